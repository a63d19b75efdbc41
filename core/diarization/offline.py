"""Offline diarization: silero-vad speech regions, GE2E window embeddings, clustering.

Windows of 1.6 s slide over each speech region; each window gets a speaker embedding;
average-linkage agglomerative clustering on cosine distance with a distance threshold
decides the number of speakers; each window's label is given to the slice of time it
is centred on, and consecutive slices of one speaker merge into a turn.

The expensive part (VAD + embeddings) runs chunk by chunk (``extract``), so a long
recording can be checkpointed and resumed; the global part (``finish``: clustering)
is cheap and runs once over all chunks.
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

ChunkFeatures = dict[str, np.ndarray]


class OfflineDiarization:
    name = "offline-silero-resemblyzer"

    def extract(self, samples: np.ndarray, rate: int, offset_s: float, batch_size: int = 64) -> ChunkFeatures:
        """Speech regions and window embeddings of one chunk, in recording time."""
        assert rate == vad.VAD_RATE, "offline diarization expects 16 kHz analysis audio"
        regions = vad.speech_regions(samples)
        mels = voice.mel_frames(samples) if regions else np.zeros((0, 40), np.float32)
        starts: list[int] = []
        owners: list[int] = []
        for r, (s, e) in enumerate(regions):
            ws = voice.window_starts(s, e, STEP_S, len(mels))
            starts += ws
            owners += [r] * len(ws)
        return {
            "regions": np.asarray(regions, dtype=np.float64).reshape(-1, 2) + offset_s,
            "window_start_s": np.asarray(starts, dtype=np.float64) * voice.MEL_HOP_S + offset_s,
            "window_region": np.asarray(owners, dtype=np.int64),
            "embeddings": voice.embed_windows(mels, starts, batch_size=batch_size),
        }

    def finish(self, chunks: list[ChunkFeatures]) -> list[Segment]:
        """Cluster every window of the recording and turn labels into speaker turns."""
        regions: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        embeddings: list[np.ndarray] = []
        for chunk in chunks:
            owners.append(chunk["window_region"] + sum(len(r) for r in regions))
            regions.append(chunk["regions"])
            starts.append(chunk["window_start_s"])
            embeddings.append(chunk["embeddings"])
        if not chunks or not sum(len(e) for e in embeddings):
            return []
        all_regions = np.concatenate(regions)
        labels = cluster(np.concatenate(embeddings))
        return relabel(_turns(all_regions, np.concatenate(starts), np.concatenate(owners), labels))

    def diarize(self, samples: np.ndarray, rate: int, batch_size: int | None = None) -> list[Segment]:
        return self.finish([self.extract(samples, rate, 0.0, batch_size or 64)])


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


def _turns(regions: np.ndarray, starts_s: np.ndarray, owners: np.ndarray, labels: np.ndarray) -> list[Segment]:
    """Give each window's label to the time around its centre, clipped to its region."""
    half = voice.WINDOW_FRAMES * voice.MEL_HOP_S / 2
    turns: list[Segment] = []
    by_region: dict[int, list[tuple[float, int]]] = {}
    for st, r, lab in zip(starts_s, owners, labels):
        by_region.setdefault(int(r), []).append((float(st) + half, int(lab)))
    for r in sorted(by_region):
        items = sorted(by_region[r])
        rs, re_ = float(regions[r][0]), float(regions[r][1])
        bounds = [rs] + [(a[0] + b[0]) / 2 for a, b in zip(items, items[1:])] + [re_]
        for i, (_, lab) in enumerate(items):
            s, e = max(rs, bounds[i]), min(re_, bounds[i + 1])
            if e <= s:
                continue
            if turns and turns[-1].speaker == str(lab) and abs(turns[-1].end - s) < 2e-3:
                turns[-1] = Segment(start=turns[-1].start, end=round(e, 3), speaker=str(lab))
            else:
                turns.append(Segment(start=round(s, 3), end=round(e, 3), speaker=str(lab)))
    return turns
