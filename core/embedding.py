"""One speaker embedding per diarized segment, and a centroid per speaker.

Segments longer than the encoder's 1.6 s window are covered by overlapping windows
whose embeddings are averaged (as Resemblyzer does for whole utterances); shorter
ones get one window centred on them. Rows keep the order of the segments, so row i of
embeddings.npy belongs to segment i of metadata.json.
"""

from __future__ import annotations

import numpy as np

from core import voice
from core.models import Segment

BACKEND_NAME = "resemblyzer-ge2e-256"
STEP_S = 0.8


def embed_segments(samples: np.ndarray, segments: list[Segment], batch_size: int = 64) -> np.ndarray:
    """(len(segments), 256) float32, L2-normalised."""
    if not segments:
        return np.zeros((0, 256), dtype=np.float32)
    mels = voice.mel_frames(samples)
    half = voice.WINDOW_FRAMES * voice.MEL_HOP_S / 2
    starts: list[int] = []
    owner: list[int] = []
    for i, seg in enumerate(segments):
        if seg.duration < 2 * half:
            centre = (seg.start + seg.end) / 2
            ws = voice.window_starts(max(0.0, centre - half), centre + half, STEP_S, len(mels))[:1]
        else:
            ws = voice.window_starts(seg.start, seg.end, STEP_S, len(mels))
        starts += ws
        owner += [i] * len(ws)
    windows = voice.embed_windows(mels, starts, batch_size=batch_size)
    out = np.zeros((len(segments), windows.shape[1]), dtype=np.float32)
    np.add.at(out, np.array(owner), windows)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)


def speaker_centroids(segments: list[Segment], embeddings: np.ndarray) -> dict[str, list[float]]:
    """Duration-weighted, L2-normalised mean embedding per speaker."""
    centroids: dict[str, list[float]] = {}
    for speaker in sorted({s.speaker for s in segments}):
        idx = [i for i, s in enumerate(segments) if s.speaker == speaker]
        weights = np.array([segments[i].duration for i in idx], dtype=np.float32)[:, None]
        mean = (embeddings[idx] * weights).sum(axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-8)
        centroids[speaker] = [round(float(v), 6) for v in mean]
    return centroids
