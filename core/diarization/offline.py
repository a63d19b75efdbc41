"""Offline diarization: silero-vad speech regions, GE2E window embeddings, clustering.

Windows of 1.6 s slide over each speech region; each window gets a speaker embedding;
average-linkage agglomerative clustering on cosine distance with a distance threshold
decides the number of speakers; each window's label is given to the slice of time it
is centred on, and consecutive slices of one speaker merge into a turn.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering

from core import vad, voice
from core.diarization import relabel
from core.models import Segment

STEP_S = 0.4
DISTANCE_THRESHOLD = 0.32  # cosine distance between cluster means that splits speakers
MIN_CLUSTER_SHARE = 0.03  # a "speaker" with fewer windows than this is merged away


class OfflineDiarization:
    name = "offline-silero-resemblyzer"

    def diarize(self, samples: np.ndarray, rate: int) -> list[Segment]:
        assert rate == vad.VAD_RATE, "offline diarization expects 16 kHz analysis audio"
        regions = vad.speech_regions(samples)
        if not regions:
            return []
        mels = voice.mel_frames(samples)
        starts: list[int] = []
        owners: list[int] = []
        for r, (s, e) in enumerate(regions):
            ws = voice.window_starts(s, e, STEP_S, len(mels))
            starts += ws
            owners += [r] * len(ws)
        emb = voice.embed_windows(mels, starts)
        labels = cluster(emb)
        return relabel(_turns(regions, starts, owners, labels))


def cluster(emb: np.ndarray) -> np.ndarray:
    if len(emb) < 2:
        return np.zeros(len(emb), dtype=int)
    labels = AgglomerativeClustering(
        n_clusters=None,
        metric="cosine",
        linkage="average",
        distance_threshold=DISTANCE_THRESHOLD,
    ).fit_predict(emb)
    return _absorb_small_clusters(emb, labels)


def _absorb_small_clusters(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    counts = np.bincount(labels)
    keep = [c for c in range(len(counts)) if counts[c] >= max(2, MIN_CLUSTER_SHARE * len(labels))]
    if not keep or len(keep) == len(counts):
        return labels
    centroids = np.stack([emb[labels == c].mean(axis=0) for c in keep])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    nearest = np.array(keep)[np.argmax(emb @ centroids.T, axis=1)]
    return np.where(np.isin(labels, keep), labels, nearest)


def _turns(regions, starts, owners, labels) -> list[Segment]:
    """Give each window's label to the time around its centre, clipped to its region."""
    half = voice.WINDOW_FRAMES * voice.MEL_HOP_S / 2
    turns: list[Segment] = []
    by_region: dict[int, list[tuple[float, int]]] = {}
    for st, r, lab in zip(starts, owners, labels):
        by_region.setdefault(r, []).append((st * voice.MEL_HOP_S + half, int(lab)))
    for r, items in by_region.items():
        rs, re_ = regions[r]
        items.sort()
        bounds = [rs] + [(a[0] + b[0]) / 2 for a, b in zip(items, items[1:])] + [re_]
        for i, (_, lab) in enumerate(items):
            s, e = max(rs, bounds[i]), min(re_, bounds[i + 1])
            if e <= s:
                continue
            if turns and turns[-1].speaker == str(lab) and abs(turns[-1].end - s) < 1e-6:
                turns[-1] = Segment(start=turns[-1].start, end=e, speaker=str(lab))
            else:
                turns.append(Segment(start=round(s, 3), end=round(e, 3), speaker=str(lab)))
    return turns
