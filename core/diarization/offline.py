"""Offline diarization: silero-vad speech regions, GE2E window embeddings, clustering.

Windows of 1.6 s slide over each speech region; each window gets a speaker embedding;
spectral clustering (speaker count from the eigengap) labels the windows, clusters
that hold two clearly different voices are split, and a Viterbi re-segmentation
against the speaker centroids cleans the labels up; each window's label is given to
the slice of time it is centred on (speaker changes placed where the two speakers'
scores cross), and consecutive slices of one speaker, across short pauses, merge into
a turn.

The expensive part (VAD + embeddings) runs chunk by chunk (``extract``), so a long
recording can be checkpointed and resumed; the global part (``finish``: clustering)
is cheap and runs once over all chunks.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from scipy.linalg import eigh
from sklearn.cluster import AgglomerativeClustering, KMeans

from core import vad, voice
from core.diarization import relabel
from core.models import Segment

STEP_S = 0.4
MIN_WINDOWS_TO_CLUSTER = 4  # fewer windows than this: one speaker
MAX_SPEAKERS = 8  # largest speaker count the eigengap may choose
MIN_WINDOWS_PER_SPEAKER = 8  # ~3 s of speech: fewer points cannot support a cluster of their own
PRUNE_SHARE = 0.3  # share of nearest neighbours each window keeps in the affinity graph
MAX_SPECTRAL_WINDOWS = 1500  # eigendecomposition is cubic: longer recordings are subsampled
MIN_CLUSTER_SHARE = 0.03  # a "speaker" with fewer windows than this is merged away
SWITCH_PENALTY = 0.05  # cosine similarity a speaker change must gain, per window step
RESEGMENT_ROUNDS = 2
# A cluster whose two halves' centroids are less similar (cosine) than the halves'
# windows are to their own centroid, by more than this, is two speakers however few
# windows one of them has. Windows sit at ~0.85-0.95 from their centroid; in meeting
# audio the best cut of a cluster falls 0.0-0.26 below that, while a distinct voice
# the eigengap folded into another speaker's cluster falls ~0.4 below.
SPLIT_MARGIN = 0.3
MIN_SPLIT_WINDOWS = 2  # a split-off speaker needs at least this many windows (~2 s of speech)
# Pause (after VAD padding) that a speaker's turn bridges when the same speaker goes on
# after it: references mark a turn through short pauses, and bridging only after the
# labels are known keeps a pause between two different speakers a turn boundary.
TURN_PAUSE_S = 0.5

# VAD settings for diarization. Meeting and podcast references mark a speaker's turn
# through short pauses and quiet far-field words, so regions start at a lower speech
# probability than silero's default, bridge pauses under VAD_MIN_SILENCE_S and are
# padded by VAD_PAD_S (the scoring collar forgives 0.25 s at each reference boundary).
VAD_THRESHOLD = 0.3
VAD_MIN_SILENCE_S = 0.6
VAD_PAD_S = 0.2

ChunkFeatures = dict[str, np.ndarray]


class OfflineDiarization:
    name = "offline-silero-resemblyzer"

    def extract(self, samples: np.ndarray, rate: int, offset_s: float, batch_size: int = 64) -> ChunkFeatures:
        """Speech regions and window embeddings of one chunk, in recording time."""
        assert rate == vad.VAD_RATE, "offline diarization expects 16 kHz analysis audio"
        regions = vad.speech_regions(
            samples, threshold=VAD_THRESHOLD, min_silence_s=VAD_MIN_SILENCE_S, pad_s=VAD_PAD_S
        )
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
        emb, owner = np.concatenate(embeddings), np.concatenate(owners)
        labels = resegment(emb, cluster(emb), owner)
        return relabel(_turns(all_regions, np.concatenate(starts), owner, labels, emb))

    def diarize(self, samples: np.ndarray, rate: int, batch_size: int | None = None) -> list[Segment]:
        return self.finish([self.extract(samples, rate, 0.0, batch_size or 64)])


def cluster(emb: np.ndarray) -> np.ndarray:
    """Speaker label per window: spectral clustering, then re-assignment to centroids.

    Spectral clustering on a pruned cosine-affinity graph estimates the speaker count
    from the largest eigengap of its Laplacian, which adapts to each recording's
    similarity scale (a fixed distance threshold does not: far-field meeting audio has
    same-speaker similarities that clean studio audio only reaches across speakers).
    Clusters holding two clearly different voices are then split (``_split_distinct``).
    Recordings with many windows are clustered on an even subsample; every window is
    then re-assigned to the nearest centroid by ``resegment``.
    """
    if len(emb) < MIN_WINDOWS_TO_CLUSTER:
        return np.zeros(len(emb), dtype=int)
    stride = int(np.ceil(len(emb) / MAX_SPECTRAL_WINDOWS))
    sample = emb[::stride]
    labels = np.repeat(_split_distinct(sample, _spectral(sample)), stride)[: len(emb)]
    return _absorb_small_clusters(emb, labels)


def _spectral(emb: np.ndarray) -> np.ndarray:
    """Labels from the eigengap-chosen number of clusters of a pruned affinity graph.

    Each window keeps its PRUNE_SHARE most similar neighbours (a binary, symmetrised
    graph), which removes the cross-speaker background similarity all GE2E vectors of
    one recording share."""
    n = len(emb)
    affinity = emb @ emb.T
    keep = max(2, round(PRUNE_SHARE * n))
    kth = -np.sort(-affinity, axis=1)[:, keep - 1 : keep]
    graph = (affinity >= kth).astype(np.float64)
    graph = (graph + graph.T) / 2
    laplacian = np.diag(graph.sum(axis=1)) - graph
    values, vectors = eigh(laplacian)
    top = max(1, min(MAX_SPEAKERS, n - 1, n // MIN_WINDOWS_PER_SPEAKER))
    k = int(np.argmax(np.diff(values[: top + 1]))) + 1
    if k == 1:
        return np.zeros(n, dtype=int)
    return KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(vectors[:, :k])


def _split_distinct(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Split clusters that hold two clearly different voices.

    The eigengap (and the MIN_WINDOWS_PER_SPEAKER bound on it) cannot give a speaker
    with a few seconds of speech a cluster of its own: its windows join the nearest
    big cluster. Each cluster is cut in two by average-linkage clustering; the cut is
    kept when the halves' centroids are less similar than the halves' windows are to
    their own centroid by more than SPLIT_MARGIN. The test compares the cluster with
    itself, so it adapts to the recording's similarity scale as the eigengap does."""
    labels = labels.copy()
    split = True
    while split and len(np.unique(labels)) < MAX_SPEAKERS:
        split = False
        for k in np.unique(labels):
            idx = np.flatnonzero(labels == k)
            if len(idx) < 2 * MIN_SPLIT_WINDOWS:
                continue
            halving = AgglomerativeClustering(n_clusters=2, metric="cosine", linkage="average")
            halves = halving.fit_predict(emb[idx])
            if np.bincount(halves, minlength=2).min() < MIN_SPLIT_WINDOWS:
                continue
            centroids = _centroids(emb[idx], halves, np.array([0, 1]))
            within = np.mean([(emb[idx][halves == h] @ centroids[h]).mean() for h in (0, 1)])
            if within - float(centroids[0] @ centroids[1]) > SPLIT_MARGIN:
                labels[idx[halves == 1]] = labels.max() + 1
                split = True
                break
    return labels


def _centroids(emb: np.ndarray, labels: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """L2-normalised mean embedding of each of ``speakers`` (rows in that order)."""
    centroids = np.stack([emb[labels == k].mean(axis=0) for k in speakers])
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-8)


def resegment(emb: np.ndarray, labels: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Re-assign windows to speaker centroids, smoothed along time within each region.

    Cluster centroids are better speaker models than single windows; a Viterbi pass
    per speech region (score: cosine similarity to each centroid, a SWITCH_PENALTY per
    speaker change) removes isolated one-window flips. Repeated RESEGMENT_ROUNDS times
    so the centroids follow the new labels."""
    for _ in range(RESEGMENT_ROUNDS):
        speakers = np.unique(labels)
        scores = emb @ _centroids(emb, labels, speakers).T
        new = np.empty_like(labels)
        for region in np.unique(owners):
            idx = np.flatnonzero(owners == region)
            new[idx] = speakers[_viterbi(scores[idx], SWITCH_PENALTY)]
        labels = new
    return labels


def _viterbi(scores: np.ndarray, penalty: float) -> np.ndarray:
    """Best state path for per-step state scores with a fixed cost per state change."""
    n, k = scores.shape
    switch = penalty * (1 - np.eye(k))
    total = scores[0].copy()
    back = np.zeros((n, k), dtype=int)
    for i in range(1, n):
        options = total[:, None] - switch
        back[i] = np.argmax(options, axis=0)
        total = options.max(axis=0) + scores[i]
    path = [int(np.argmax(total))]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i][path[-1]]))
    return np.array(path[::-1])


def _absorb_small_clusters(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    counts = np.bincount(labels)
    keep = [c for c in range(len(counts)) if counts[c] >= max(2, MIN_CLUSTER_SHARE * len(labels))]
    if not keep or len(keep) == len(counts):
        return labels
    centroids = np.stack([emb[labels == c].mean(axis=0) for c in keep])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    nearest = np.array(keep)[np.argmax(emb @ centroids.T, axis=1)]
    return np.where(np.isin(labels, keep), labels, nearest)


def _turns(
    regions: np.ndarray, starts_s: np.ndarray, owners: np.ndarray, labels: np.ndarray, emb: np.ndarray
) -> list[Segment]:
    """Give each window's label to the time around its centre, clipped to its region.

    Between two windows of one speaker the boundary is half-way between their centres;
    at a speaker change it is where the two speakers' centroid similarities cross,
    interpolated linearly between the two window centres (finer than the window step).
    A speaker's turns merge across pauses shorter than TURN_PAUSE_S."""
    half = voice.WINDOW_FRAMES * voice.MEL_HOP_S / 2
    speakers = np.unique(labels)
    scores = emb @ _centroids(emb, labels, speakers).T
    column = {int(k): i for i, k in enumerate(speakers)}
    turns: list[Segment] = []
    by_region: dict[int, list[tuple[float, int, int]]] = {}
    for i, (st, r, lab) in enumerate(zip(starts_s, owners, labels)):
        by_region.setdefault(int(r), []).append((float(st) + half, int(lab), i))
    for r in sorted(by_region):
        items = sorted(by_region[r])
        rs, re_ = float(regions[r][0]), float(regions[r][1])
        bounds = [rs] + [_change_point(a, b, scores, column) for a, b in pairwise(items)] + [re_]
        for i, (_, lab, _) in enumerate(items):
            s, e = max(rs, bounds[i]), min(re_, bounds[i + 1])
            if e <= s:
                continue
            if turns and turns[-1].speaker == str(lab) and -2e-3 < s - turns[-1].end < TURN_PAUSE_S:
                turns[-1] = Segment(start=turns[-1].start, end=round(e, 3), speaker=str(lab))
            else:
                turns.append(Segment(start=round(s, 3), end=round(e, 3), speaker=str(lab)))
    return turns


def _change_point(a: tuple[float, int, int], b: tuple[float, int, int], scores: np.ndarray, column) -> float:
    """Boundary between consecutive windows a and b, each (centre_s, label, row)."""
    (ca, la, ia), (cb, lb, ib) = a, b
    if la == lb:
        return (ca + cb) / 2
    pa, pb = column[la], column[lb]
    da = scores[ia, pa] - scores[ia, pb]  # > 0: window a prefers its own speaker
    db = scores[ib, pa] - scores[ib, pb]  # < 0: window b prefers its own speaker
    if da <= 0 or db >= 0:
        return (ca + cb) / 2
    return ca + (cb - ca) * da / (da - db)
