"""One speaker embedding per diarized segment, and a centroid per speaker.

Each segment's embedding is CAM++ pooled over the segment's frames, at most the
central MAX_EMBED_S of it (a speaker embedding gains little past a few seconds),
without the stretches where another speaker talks over it when enough speech is left:
a segment's vector should be its speaker's voice, not the mixture. Rows keep the order
of the segments, so row i of embeddings.npy belongs to segment i of metadata.json.

The frames come from the diarization's own CAM++ pass where it kept them
(``FRAMES_BACKEND_NAME``: one trunk pass per recording, its fbank mean-normalised over
10 s blocks); otherwise (another diarization backend, or a diarization made before
it kept frames) from a pass over each segment's own stretch (``BACKEND_NAME``). The
two give slightly different vectors, so their names differ: vectors of different
names are never compared.
"""

from __future__ import annotations

import numpy as np

from core.analysis import campplus, model_files
from core.contracts.video import Segment

BACKEND_NAME = model_files.EMBEDDING_NAME
FRAMES_BACKEND_NAME = f"{model_files.EMBEDDING_NAME}/diarization-frames"
DIM = campplus.DIM
MIN_CLEAN_S = 0.5  # below this much speech without overlap, pool the whole segment
MAX_EMBED_S = 6.0


def embed_segments(samples: np.ndarray, segments: list[Segment], batch_size: int = 8) -> np.ndarray:
    """(len(segments), DIM) float32, L2-normalised; segment times are in ``samples``' time."""
    if not segments:
        return np.zeros((0, DIM), dtype=np.float32)
    items = segment_items(segments, len(samples))
    return campplus.embed_spans(samples, items, batch_size).astype(np.float32)


def segment_items(segments: list[Segment], num_samples: int) -> list[campplus.Item]:
    """What each segment's embedding pools: its frames on the recording's grid, weighted."""
    starts = np.array([s.start for s in segments])
    ends = np.array([s.end for s in segments])
    speakers = np.array([s.speaker for s in segments])
    return [_item(segment, starts, ends, speakers, num_samples) for segment in segments]


def embed_from_frames(
    frames: np.ndarray, first: int, segments: list[Segment], num_samples: int
) -> np.ndarray:
    """(len(segments), DIM) pooled from trunk frames (C, T) that start at frame ``first``
    and cover the segments: one chunk of frames, where a recording's are not split."""
    items = segment_items(segments, num_samples)
    return embeddings_from_frames(campplus.pool_statistics(frames.astype(np.float32), first, items))


def embeddings_from_frames(stats: np.ndarray) -> np.ndarray:
    """(n, DIM) float32 from the weighted sums ``campplus.pool_statistics`` gave for
    ``segment_items``, added up over the chunks of frames they span."""
    return campplus.embeddings_from_statistics(stats).astype(np.float32)


def _item(
    seg: Segment, starts: np.ndarray, ends: np.ndarray, speakers: np.ndarray, num_samples: int
) -> campplus.Item:
    middle, half = (seg.start + seg.end) / 2, min(seg.duration, MAX_EMBED_S) / 2
    first, weights = campplus.span_item(middle - half, middle + half, num_samples)
    clean = weights.copy()
    lo, hi = first * campplus.FRAME_S, (first + len(weights)) * campplus.FRAME_S
    others = (speakers != seg.speaker) & (starts < hi) & (ends > lo)  # talking over it
    for start, end in zip(starts[others], ends[others]):
        a = max(0, int(round(start / campplus.FRAME_S)) - first)
        b = max(0, int(round(end / campplus.FRAME_S)) - first)
        clean[a:b] = 0
    return (first, clean) if clean.sum() * campplus.FRAME_S >= MIN_CLEAN_S else (first, weights)


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
