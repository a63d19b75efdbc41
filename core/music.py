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


def block_scores(samples: np.ndarray, rate: int) -> np.ndarray:
    """Unsmoothed music score per BLOCK_S block. Chunks whose length is a multiple of
    BLOCK_S can be scored separately and concatenated."""
    import librosa

    hop = 512
    n_fft = 2048
    spec = np.abs(librosa.stft(samples, n_fft=n_fft, hop_length=hop)) ** 2
    harmonic, percussive = librosa.decompose.hpss(spec, kernel_size=31)
    flatness = librosa.feature.spectral_flatness(S=np.sqrt(spec))[0]
    energy_db = 10 * np.log10(spec.sum(axis=0) / (n_fft / 2) + 1e-12)
    harm_ratio = harmonic.sum(axis=0) / (harmonic.sum(axis=0) + percussive.sum(axis=0) + 1e-12)

    # frame f covers time f * hop / rate: assign it to block floor(t / BLOCK_S), so block
    # times stay exact over hours of audio (blocks are not a whole number of frames)
    n_blocks = max(1, int(np.ceil(len(samples) / rate / BLOCK_S)))
    block_of = np.minimum((np.arange(len(energy_db)) * hop / rate / BLOCK_S).astype(int), n_blocks - 1)
    bounds = np.searchsorted(block_of, np.arange(1, n_blocks))

    def per_block(values: np.ndarray, fn=np.mean) -> np.ndarray:
        parts = np.split(values, bounds)
        return np.array([fn(p) if len(p) else np.nan for p in parts])

    loud = _fill(per_block(energy_db, np.median))
    tonal = _fill(per_block(np.log10(flatness + 1e-10), np.median))  # ~ -5 (pure tone) .. 0 (noise)
    harm = _fill(per_block(harm_ratio))

    speech = vad.speech_probabilities(samples) if rate == vad.VAD_RATE else np.zeros(0)
    vad_block = np.minimum((np.arange(len(speech)) * vad.VAD_CHUNK / vad.VAD_RATE / BLOCK_S).astype(int), n_blocks - 1)
    speech_b = np.zeros(n_blocks)
    if len(speech):
        speech_b = np.bincount(vad_block, weights=speech, minlength=n_blocks) / np.maximum(
            np.bincount(vad_block, minlength=n_blocks), 1
        )

    loud_score = _sigmoid((loud + 50.0) / 4.0)
    tonal_score = _sigmoid((-tonal - 2.0) / 0.35)
    harm_score = _sigmoid((harm - 0.55) / 0.08)
    return (loud_score * tonal_score * harm_score * (1.0 - 0.8 * speech_b)).astype(np.float32)


def smooth(scores: np.ndarray) -> np.ndarray:
    """Music probability per block: scores averaged over ~2 s."""
    kernel = np.ones(4) / 4
    return np.clip(np.convolve(scores, kernel, mode="same"), 0.0, 1.0)


def detect_music(samples: np.ndarray, rate: int) -> list[MusicRegion]:
    return regions_from_scores(block_scores(samples, rate), len(samples) / rate)


def regions_from_scores(scores: np.ndarray, total: float) -> list[MusicRegion]:
    probs = smooth(scores)
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


def music_probabilities(samples: np.ndarray, rate: int) -> np.ndarray:
    """Smoothed music probability per BLOCK_S block of a whole recording."""
    return smooth(block_scores(samples, rate))


def _fill(values: np.ndarray) -> np.ndarray:
    """Blocks without a frame (only possible at the very end) take their neighbour's value."""
    if np.isnan(values).any():
        idx = np.where(~np.isnan(values), np.arange(len(values)), 0)
        values = values[np.maximum.accumulate(idx)]
    return values


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
