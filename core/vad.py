"""Speech activity from silero-vad, whose weights ship inside its PyPI wheel.

Both the diarization backend (where to look for speakers) and the music detector
(where speech is, so music under it is not confused with talking) use it, so it lives
here once, loaded once per process.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
import torch

VAD_RATE = 16_000
VAD_CHUNK = 512  # samples per silero step at 16 kHz (32 ms)

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _model():
    from silero_vad import load_silero_vad

    return load_silero_vad()


def speech_probabilities(samples: np.ndarray) -> np.ndarray:
    """Per-32 ms speech probability for 16 kHz mono samples."""
    model = _model()
    pad = (-len(samples)) % VAD_CHUNK
    audio = torch.from_numpy(np.pad(samples, (0, pad)).astype(np.float32))
    with _lock, torch.inference_mode():  # the JIT model keeps recurrent state: one caller at a time
        model.reset_states()
        probs = model.audio_forward(audio, sr=VAD_RATE)
    return probs.squeeze(0).numpy().astype(np.float32)


def speech_regions(
    samples: np.ndarray,
    threshold: float = 0.5,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.3,
    pad_s: float = 0.05,
) -> list[tuple[float, float]]:
    """Speech regions in seconds, from the frame probabilities with hysteresis."""
    probs = speech_probabilities(samples)
    step = VAD_CHUNK / VAD_RATE
    total = len(samples) / VAD_RATE
    on, off = threshold, max(threshold - 0.15, 0.01)
    regions: list[list[float]] = []
    start: float | None = None
    for i, p in enumerate(probs):
        t = i * step
        if start is None and p >= on:
            start = t
        elif start is not None and p < off:
            regions.append([start, t])
            start = None
    if start is not None:
        regions.append([start, len(probs) * step])
    merged: list[list[float]] = []
    for s, e in regions:
        if merged and s - merged[-1][1] < min_silence_s:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    return [
        (max(0.0, s - pad_s), min(total, e + pad_s))
        for s, e in merged
        if e - s >= min_speech_s
    ]
