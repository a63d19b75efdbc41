"""Where music plays, with a probability per region.

A frame-level detector over 0.5 s blocks: music is sustained, tonal sound. Each block
scores high when it is loud enough to matter, spectrally peaky (low spectral flatness,
unlike broadband noise), and its harmonic energy dominates (HPSS); blocks where
silero-vad hears speech are discounted, since speech is also harmonic. Scores are
smoothed over ~2 s and thresholded into regions.
"""

from __future__ import annotations

import numpy as np

from core import vad
from core.models import MusicRegion

BACKEND_NAME = "music-hpss-flatness-vad"
BLOCK_S = 0.5
MIN_REGION_S = 1.0
THRESHOLD = 0.5


def music_probabilities(samples: np.ndarray, rate: int) -> np.ndarray:
    """Music probability per BLOCK_S block."""
    import librosa

    hop = 512
    n_fft = 2048
    spec = np.abs(librosa.stft(samples, n_fft=n_fft, hop_length=hop)) ** 2
    harmonic, percussive = librosa.decompose.hpss(spec, kernel_size=31)
    flatness = librosa.feature.spectral_flatness(S=np.sqrt(spec))[0]
    energy_db = 10 * np.log10(spec.sum(axis=0) / (n_fft / 2) + 1e-12)
    harm_ratio = harmonic.sum(axis=0) / (harmonic.sum(axis=0) + percussive.sum(axis=0) + 1e-12)

    frames_per_block = max(1, int(round(BLOCK_S * rate / hop)))
    n_blocks = max(1, int(np.ceil(len(energy_db) / frames_per_block)))

    def per_block(values: np.ndarray, fn=np.mean) -> np.ndarray:
        pad = n_blocks * frames_per_block - len(values)
        v = np.pad(values, (0, pad), mode="edge").reshape(n_blocks, frames_per_block)
        return fn(v, axis=1)

    loud = per_block(energy_db, np.median)
    tonal = per_block(np.log10(flatness + 1e-10), np.median)  # ~ -5 (pure tone) .. 0 (white noise)
    harm = per_block(harm_ratio)

    speech = vad.speech_probabilities(samples) if rate == vad.VAD_RATE else np.zeros(1)
    vad_per_block = max(1, int(round(BLOCK_S * vad.VAD_RATE / vad.VAD_CHUNK)))
    speech_b = np.resize(
        np.pad(speech, (0, max(0, n_blocks * vad_per_block - len(speech))))[: n_blocks * vad_per_block]
        .reshape(n_blocks, vad_per_block)
        .mean(axis=1),
        n_blocks,
    )

    loud_score = _sigmoid((loud + 50.0) / 4.0)
    tonal_score = _sigmoid((-tonal - 2.0) / 0.35)
    harm_score = _sigmoid((harm - 0.55) / 0.08)
    score = loud_score * tonal_score * harm_score * (1.0 - 0.8 * speech_b)
    kernel = np.ones(4) / 4
    return np.clip(np.convolve(score, kernel, mode="same"), 0.0, 1.0)


def detect_music(samples: np.ndarray, rate: int) -> list[MusicRegion]:
    probs = music_probabilities(samples, rate)
    total = len(samples) / rate
    regions: list[MusicRegion] = []
    start = None
    for i, p in enumerate(np.append(probs, 0.0)):
        if p >= THRESHOLD and start is None:
            start = i
        elif p < THRESHOLD and start is not None:
            s, e = start * BLOCK_S, min(i * BLOCK_S, total)
            if e - s >= MIN_REGION_S:
                regions.append(
                    MusicRegion(start=round(s, 2), end=round(e, 2), probability=round(float(probs[start:i].mean()), 3))
                )
            start = None
    return regions


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
