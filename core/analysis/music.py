"""Where music plays, with a probability per region.

Music is made of notes: partials that hold one frequency for a quarter of a second
or more, many at once. Noise (traffic, crowds, rain, machines) has no such lines, and
speech has harmonics whose pitch glides within each syllable, so few survive that
long. The detector therefore counts *sustained spectral peaks* per frame: the
log-spectrum's running minimum over SUSTAIN_S (a partial must be present the whole
time; +-1 bin of drift is allowed for vibrato) that stands CONTRAST_DB above its
spectral neighbourhood. Music under speech (radio) keeps its sustained partials
between and beneath the syllables, so it is still counted; where silero-vad hears
speech the count needed is raised a little, since long vowels add a few such peaks.

Per 0.5 s block: the mean peak count through a sigmoid around PEAK_COUNT, times an
audibility gate; blocks are smoothed over ~2 s and thresholded into regions. It costs
one 1024-point FFT per 31 ms and a few running min/max filters.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import scipy.fft
from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d

from core.analysis import vad
from core.contracts.video import MusicRegion

BACKEND_NAME = "music-sustained-partials-vad"
BLOCK_S = 0.5
MIN_REGION_S = 1.0
THRESHOLD = 0.5

N_FFT = 1024  # 64 ms at 16 kHz: 15.6 Hz bins resolve the partials of low notes
HOP = 500  # 31.25 ms: 16 frames per BLOCK_S block at 16 kHz, so blocks hold whole frames
BAND_HZ = (100.0, 5000.0)  # where musical partials are; below is hum, above is hiss
SUSTAIN_S = 0.25  # a note's partial must last this long (a running minimum over time)
DRIFT_BINS = 3  # +-1 bin tolerance for vibrato before the running minimum
CONTRAST_DB = 9.0  # a sustained peak stands this far above the local spectral mean
NEIGHBOURHOOD_BINS = 25  # ~390 Hz: the spectral neighbourhood a peak is compared with
PEAK_BINS = 5  # a peak is the largest value within +-2 bins
PEAK_COUNT = 10.0  # sustained peaks per frame at which a block is 50% music
PEAK_COUNT_SCALE = 1.5  # sigmoid width of that decision, in peaks
SPEECH_EXTRA_PEAKS = 2.0  # raise PEAK_COUNT by this much where silero hears speech
SILENT_DBFS = -60.0  # blocks quieter than this are not music, whatever their shape
SMOOTH_BLOCKS = 4  # ~2 s moving average of block scores
FFT_BLOCK = 2048  # frames per FFT call (~64 s of audio)


def block_scores(samples: np.ndarray, rate: int) -> np.ndarray:
    """Unsmoothed music score per BLOCK_S block. Chunks whose length is a multiple of
    BLOCK_S can be scored separately and concatenated."""
    n_blocks = max(1, int(np.ceil(len(samples) / rate / BLOCK_S)))
    log_power = _log_spectrogram(samples, rate)
    peaks = _per_block(_sustained_peaks(log_power, rate), n_blocks, HOP / rate)
    level = _per_block(_frame_level_dbfs(log_power), n_blocks, HOP / rate)
    speech = np.zeros(n_blocks)
    if rate == vad.VAD_RATE:
        speech = _per_block(vad.speech_probabilities(samples), n_blocks, vad.VAD_CHUNK / vad.VAD_RATE)
    needed = PEAK_COUNT + SPEECH_EXTRA_PEAKS * speech
    audible = level > SILENT_DBFS
    return (_sigmoid((peaks - needed) / PEAK_COUNT_SCALE) * audible).astype(np.float32)


def _log_spectrogram(samples: np.ndarray, rate: int) -> np.ndarray:
    """(frames, bins) power in dB of Hann-windowed N_FFT frames every HOP samples;
    frame f is centred on sample f * HOP. In float32 through scipy.fft, FFT_BLOCK frames
    at a time: a block's spectra stay in cache, where a pass over the whole chunk paid
    for fresh memory most of its CPU (benchmarks/README.md)."""
    n_frames = max(1, int(np.ceil(len(samples) / HOP)))
    padded = np.pad(samples.astype(np.float32, copy=False), (N_FFT // 2, N_FFT // 2 + n_frames * HOP))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    window = np.hanning(N_FFT).astype(np.float32)
    out = np.empty((n_frames, N_FFT // 2 + 1), dtype=np.float32)
    for a in range(0, n_frames, FFT_BLOCK):
        spectrum = scipy.fft.rfft(frames[a : a + FFT_BLOCK] * window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        block = out[a : a + FFT_BLOCK]
        np.log10(power + np.float32(1e-10), out=block)
        block *= np.float32(10.0)
    return out


def _sustained_peaks(log_power: np.ndarray, rate: int) -> np.ndarray:
    """Per frame, how many spectral lines in BAND_HZ held their level for SUSTAIN_S."""
    hz_per_bin = rate / N_FFT
    band = log_power[:, int(BAND_HZ[0] / hz_per_bin) : int(BAND_HZ[1] / hz_per_bin)]
    frames = max(1, int(round(SUSTAIN_S * rate / HOP)))
    held = minimum_filter1d(maximum_filter1d(band, DRIFT_BINS, axis=1), frames, axis=0)
    contrast = held - uniform_filter1d(held, NEIGHBOURHOOD_BINS, axis=1)
    is_peak = (held == maximum_filter1d(held, PEAK_BINS, axis=1)) & (contrast > CONTRAST_DB)
    return cast(np.ndarray, is_peak.sum(axis=1).astype(np.float64))


def _frame_level_dbfs(log_power: np.ndarray) -> np.ndarray:
    """Frame level in dB relative to a full-scale sine (0 dBFS)."""
    full_scale = (N_FFT * np.hanning(N_FFT).mean() / 2) ** 2
    peak = np.power(10.0, log_power.max(axis=1) / 10.0)  # the loudest bin (dB is monotonic)
    return cast(np.ndarray, 10.0 * np.log10(peak / full_scale + 1e-12))


def _per_block(values: np.ndarray, n_blocks: int, step_s: float) -> np.ndarray:
    """Mean of per-step values over each BLOCK_S block (step i starts at i * step_s);
    block times stay exact over hours of audio. A block without a step takes its
    neighbour's value."""
    if not len(values):
        return np.zeros(n_blocks)
    block_of = np.minimum((np.arange(len(values)) * step_s / BLOCK_S).astype(int), n_blocks - 1)
    counts = np.bincount(block_of, minlength=n_blocks)
    means = np.bincount(block_of, weights=values, minlength=n_blocks) / np.maximum(counts, 1)
    filled = np.where(counts > 0, np.arange(n_blocks), 0)
    return means[np.maximum.accumulate(filled)]


def smooth(scores: np.ndarray) -> np.ndarray:
    """Music probability per block: scores averaged over ~2 s."""
    smoothed = uniform_filter1d(scores.astype(np.float64), SMOOTH_BLOCKS, mode="nearest")
    return cast(np.ndarray, np.clip(smoothed, 0.0, 1.0))


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
                    MusicRegion(
                        start=round(s, 2), end=round(e, 2), probability=round(float(probs[start:i].mean()), 3)
                    )
                )
            start = None
    return regions


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, 1.0 / (1.0 + np.exp(-x)))
