"""Which local speakers are one person: the global step of the pretrained backend.

Segmentation finds up to 3 local speakers per 10 s window, each with a CAM++ embedding
(core/analysis/diarization/pretrained.py, which runs the networks). This step decides the
recording's speakers from those arrays alone, no model and no audio: the one decision
about who is who, with its constants, in one place.

1. The local speakers with MIN_CLEAN_S of speech of their own take part; at most
   MAX_COMPARED of them, evenly through the recording, are compared with each other,
   so the pairwise work is bounded whatever the episode's length.
2. Spectral clustering with auto-tuned pruning (NME-SC: Park et al., "Auto-Tuning
   Spectral Clustering for Speaker Diarization Using Normalized Maximum Eigengap",
   2019; NVIDIA NeMo's default): for each number p of nearest neighbours kept per row
   of the cosine affinity, the graph Laplacian's largest eigengap says how many
   speakers there are; the p whose gap is clearest for its size wins, and k-means on
   the Laplacian's first eigenvectors splits the speakers. The count comes from the
   recording's own structure, not from one global distance (average-linkage under a
   fixed threshold merged close voices of a podcast and split others).
3. Spectral clustering splits a voice whose embeddings drift (an hour, a laugh, a
   phone line), so clusters whose centroids are more alike than MERGE_SIMILARITY are
   one person, merged closest pair first, every local speaker going to its nearest
   centroid again after each merge. Two exceptions, from what the segmentation knows
   beyond the embeddings:
   - two clusters heard side by side (local speakers of one window in more than
     COOCCUR_MAX of the rarer one's windows) are two people, however alike their
     voices: one voice drifting is one local speaker per window, a conversation is two
     (measured: the two AMI voices of the dev set are about as alike as MERGE_SIMILARITY
     and were merged into one in the 4-voice podcast build);
   - a cluster with under MIN_SPEAKER_SHARE of an even share of the clean speech is no
     speaker of its own (laughter, music under speech, a stretch of two voices at
     once); its local speakers go to the nearest of the others.
4. Every local speaker of a window then goes to a centroid, two of one window never to
   the same one.
5. The segmentation sometimes makes one local speaker of two people who take turns
   within its window. So each block (a second) of a local speaker with BLOCK_MIN_S of
   clean speech, embedded on its own, moves to the centroid it is nearest to when that
   beats its own cluster's by BLOCK_MARGIN and no other local speaker of the window
   holds it (``recheck_blocks``; measured: 1 s blocks beat 2.5 s, 1.25 s and 0.5 s ones,
   and the margin changes little between 0 and 0.1).

Below MIN_SPECTRAL local speakers (a few minutes of speech) the affinity graph is
too sparse for its eigengap to mean much (measured: spectral confused the two voices of
a 2.5-minute build that average-linkage kept apart), so there average-linkage under
AHC_THRESHOLD makes the first pass, never joining clusters heard side by side (the
rule of step 3), and step 3 follows as above.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from scipy.optimize import linear_sum_assignment

MIN_CLEAN_S = 1.0  # speech of its own a local speaker needs to take part in clustering
MAX_COMPARED = 1200  # local speakers compared pairwise (the rest join their nearest centroid)
# The most speakers the eigengap may find (merging only lowers it). Well above any count
# expected: at 20, a recording of 19 voices found 20 or 12 depending on noise at cosine
# 0.99999 in its embeddings (the largest gap sat at the edge of the range); at 30 it
# finds 28, merged to 20, whatever the noise (benchmarks/README.md).
MAX_SPEAKERS = 30
PRUNE_MAX = 0.15  # the largest p tried, as a fraction of the local speakers compared
PRUNE_STEPS = 30  # values of p tried between 1 and that
# Cosine similarity of two clusters' centroids above which they are one voice, measured
# with benchmarks.quality on the dev set, the long-form builds and the podcast-like set
# (its trade-off curve is in benchmarks/README.md); 3D-Speaker merges CAM++ clusters at 0.78.
MERGE_SIMILARITY = 0.8
MIN_SPECTRAL = 200  # fewer local speakers than this: average-linkage instead
AHC_THRESHOLD = 0.4  # mean cosine distance between two clusters (average linkage)
MIN_CLUSTER_SIZE = 2  # local speakers; a smaller first-pass cluster joins the nearest big one
BLOCKS = 10  # blocks of a window (1 s each) whose speech is checked again on its own
BLOCK_MIN_S = 0.5  # clean speech a block needs for an embedding of its own
BLOCK_MARGIN = 0.05  # cosine by which a block's nearest centroid must beat its own cluster's
# Two clusters with local speakers side by side in more than this share of the windows
# of the rarer one are two people, however alike (both with COOCCUR_MIN_SHARE of the
# speech: a sliver the segmentation split off a voice is not protected). Measured with
# benchmarks.who_is_who, trade-off in benchmarks/README.md.
COOCCUR_MAX = 0.2
COOCCUR_MIN_SHARE = 0.03
# Of an even share of the clean speech (1 / clusters): a cluster with less is folded into
# the others. Relative, so a recording of many voices keeps its quiet ones (at 0.01 of
# all the speech, a 5-voice build kept two slivers; at 0.02, the 19-voice long form lost
# real voices).
MIN_SPEAKER_SHARE = 0.1
RECHECK_WINDOWS = 1024  # windows whose blocks are compared with the centroids at once


def usable(emb: np.ndarray, clean: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(windows, 3) mask of the local speakers that take part in clustering."""
    return cast(np.ndarray, active & (clean >= MIN_CLEAN_S) & ~np.isnan(emb).any(axis=2))


def assign_clusters(emb: np.ndarray, clean: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster index of each (window, local speaker), -1 where the speaker is silent, and
    the clusters' unit centroids (none where nothing is usable)."""
    taking_part = usable(emb, clean, active)
    if taking_part.sum() < 2:  # nothing to compare: one speaker (its centroid, if it has one)
        return np.where(active, 0, -1), _unit(emb[taking_part])
    train = _unit(emb[taking_part])
    windows = np.nonzero(taking_part)[0]
    seconds = clean[taking_part]
    first = _first_pass(train, windows, seconds)
    centroids = _merge_alike(train, windows, seconds, _centroids(train, first, MIN_CLUSTER_SIZE))
    return _assign(emb, active, centroids), centroids


def recheck_blocks(blocks: np.ndarray, clusters: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(windows, 3, blocks) cluster of each block of each local speaker: its own
    cluster, unless the block's own embedding is closer to another centroid by
    BLOCK_MARGIN and no other local speaker of the window is there already (a local
    speaker the segmentation made of two people splits where each talks)."""
    out = np.repeat(clusters[:, :, None], blocks.shape[2], axis=2)
    if len(centroids) < 2:
        return out
    known = ~np.isnan(blocks).any(axis=3) & (clusters >= 0)[:, :, None]
    sim = np.zeros((*known.shape, len(centroids)), dtype=np.float32)
    for lo in range(0, len(blocks), RECHECK_WINDOWS):  # a slice at a time: bounded memory
        part = np.nan_to_num(blocks[lo : lo + RECHECK_WINDOWS].astype(np.float32))
        sim[lo : lo + RECHECK_WINDOWS] = part @ centroids.T.astype(np.float32)
    for w, k, b in zip(*np.nonzero(known)):
        own, best = clusters[w, k], int(np.argmax(sim[w, k, b]))
        taken = {int(out[w, j, b]) for j in range(out.shape[1]) if j != k and clusters[w, j] >= 0}
        if best != own and best not in taken and sim[w, k, b, best] - sim[w, k, b, own] >= BLOCK_MARGIN:
            out[w, k, b] = best
    return out


def _first_pass(train: np.ndarray, windows: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """A cluster index per local speaker: spectral on at most MAX_COMPARED of them (the
    others join their nearest centroid), average-linkage for a short recording."""
    n = len(train)
    if n < MIN_SPECTRAL:
        return _average_linkage(train, windows, seconds)
    if n <= MAX_COMPARED:
        return _spectral(train)
    compared = np.linspace(0, n - 1, MAX_COMPARED).round().astype(int)
    centroids = _centroids(train[compared], _spectral(train[compared]), 1)
    return cast(np.ndarray, np.argmax(train @ centroids.T, axis=1))


def _presence(labels: np.ndarray, windows: np.ndarray, k: int) -> np.ndarray:
    """(clusters, windows) 1 where a local speaker of the cluster is in the window."""
    present = np.zeros((k, int(windows.max()) + 1), dtype=np.float32)
    present[labels, windows] = 1.0
    return present


def _heard_together(present: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Pairs of clusters with local speakers side by side in more than COOCCUR_MAX of the
    windows of the rarer one, both with COOCCUR_MIN_SHARE of the speech."""
    together = present @ present.T
    alone = present.sum(axis=1)
    cooccur = together / np.maximum(np.minimum(alone[:, None], alone[None, :]), 1.0)
    big = share >= COOCCUR_MIN_SHARE
    return cast(np.ndarray, (cooccur > COOCCUR_MAX) & big[:, None] & big[None, :])


def _average_linkage(train: np.ndarray, windows: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Average-linkage under AHC_THRESHOLD that never joins clusters heard side by side."""
    n = len(train)
    total = (train @ train.T).astype(np.float64)  # summed similarity between two clusters
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    present = _presence(np.arange(n), windows, n)
    secs = seconds.astype(np.float64).copy()
    labels = np.arange(n)
    while alive.sum() > 1:
        average = total / np.outer(sizes, sizes)
        np.fill_diagonal(average, -np.inf)
        average[~alive] = -np.inf
        average[:, ~alive] = -np.inf
        average[_heard_together(present, secs / max(float(secs.sum()), 1e-9))] = -np.inf
        i, j = np.unravel_index(np.argmax(average), average.shape)
        if 1.0 - average[i, j] > AHC_THRESHOLD:
            break
        total[i] += total[j]
        total[:, i] += total[:, j]
        sizes[i] += sizes[j]
        present[i] = np.maximum(present[i], present[j])
        secs[i] += secs[j]
        alive[j] = False
        labels[labels == j] = i
    return cast(np.ndarray, np.unique(labels, return_inverse=True)[1])


def _spectral(x: np.ndarray) -> np.ndarray:
    """NME-SC: pruning and speaker count from the normalised maximum eigengap."""
    from sklearn.cluster import KMeans

    n = len(x)
    sim = x @ x.T
    sim = (sim - sim.min()) / max(float(sim.max() - sim.min()), 1e-8)
    np.fill_diagonal(sim, 0.0)
    nearest = np.argsort(-sim, axis=1)
    largest = max(2, int(n * PRUNE_MAX))
    best: tuple[float, int, int] | None = None  # (normalised gap ratio, speakers, p)
    for p in sorted({max(1, int(v)) for v in np.linspace(1, largest, PRUNE_STEPS)}):
        eigenvalues = np.linalg.eigvalsh(_laplacian(nearest, p))
        gaps = np.diff(eigenvalues[: min(MAX_SPEAKERS, n - 1) + 1])
        k = int(np.argmax(gaps)) + 1
        ratio = (p / n) / (gaps[k - 1] / (eigenvalues[-1] + 1e-10) + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, k, p)
    assert best is not None  # at least one p is tried
    _, k, p = best
    if k == 1:
        return np.zeros(n, dtype=int)
    _, vectors = np.linalg.eigh(_laplacian(nearest, p))
    return cast(np.ndarray, KMeans(k, n_init=10, random_state=0).fit_predict(vectors[:, :k]))


def _laplacian(nearest: np.ndarray, p: int) -> np.ndarray:
    """Unnormalised Laplacian of the graph linking each local speaker to its p nearest."""
    n = len(nearest)
    affinity = np.zeros((n, n))
    affinity[np.arange(n)[:, None], nearest[:, :p]] = 1.0
    affinity = 0.5 * (affinity + affinity.T)
    laplacian: np.ndarray = np.diag(affinity.sum(axis=1)) - affinity
    return laplacian


def _merge_alike(
    train: np.ndarray, windows: np.ndarray, seconds: np.ndarray, centroids: np.ndarray
) -> np.ndarray:
    """Merge the two most alike clusters not heard side by side while their centroids'
    similarity reaches MERGE_SIMILARITY, after folding any cluster with under
    MIN_SPEAKER_SHARE of an even share of the speech; every local speaker goes to its
    nearest centroid before each look."""
    while len(centroids) > 1:
        labels = np.unique(np.argmax(train @ centroids.T, axis=1), return_inverse=True)[1]
        centroids = _centroids(train, labels, 1)
        share = np.bincount(labels, weights=seconds) / max(float(seconds.sum()), 1e-9)
        if share.min() * len(centroids) < MIN_SPEAKER_SHARE:  # a sliver beside the others
            centroids = np.delete(centroids, int(np.argmin(share)), axis=0)
            continue
        similarity = centroids @ centroids.T
        np.fill_diagonal(similarity, -np.inf)
        similarity[_heard_together(_presence(labels, windows, len(centroids)), share)] = -np.inf
        i, j = np.unravel_index(np.argmax(similarity), similarity.shape)
        if similarity[i, j] < MERGE_SIMILARITY:
            break
        labels[labels == j] = i
        centroids = _centroids(train, np.unique(labels, return_inverse=True)[1], 1)
    return centroids


def _assign(emb: np.ndarray, active: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each active local speaker to a centroid, two of one window never to the same one."""
    out = np.full(active.shape, -1, dtype=int)
    for w in np.flatnonzero(active.any(axis=1)):
        speakers = np.flatnonzero(active[w])
        vectors = emb[w, speakers]
        sim = np.where(
            np.isnan(vectors).any(axis=1, keepdims=True), 0.0, np.nan_to_num(vectors) @ centroids.T
        )
        if len(speakers) <= len(centroids):
            rows, cols = linear_sum_assignment(-sim)
            out[w, speakers[rows]] = cols
        else:  # more local speakers than clusters: each to its nearest
            out[w, speakers] = np.argmax(sim, axis=1)
    return out


def _centroids(train: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    """Unit centroids of the clusters with at least ``min_size`` members (all if none has)."""
    sizes = np.bincount(labels)
    big = np.flatnonzero(sizes >= min_size)
    if not len(big):
        big = np.arange(len(sizes))
    return _unit(np.stack([train[labels == c].mean(axis=0) for c in big]))


def _unit(x: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8))
