"""Which local speakers are one person: the global step of the pretrained backend.

Segmentation finds up to 3 local speakers per 10 s window, each with a CAM++ embedding
(core/analysis/diarization/pretrained.py, which runs the networks). This step decides the
recording's speakers from those arrays alone, no model and no audio: the one decision
about who is who, with its threshold, in one place. Average-linkage agglomerative
clustering under a cosine-distance THRESHOLD estimates the speaker count from 1 to
dozens whatever the length; clusters smaller than MIN_CLUSTER_SIZE join their nearest
big cluster; every local speaker of a window then goes to a cluster, two of one window
never to the same one.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment

# Clustering. The threshold is the mean cosine distance between two clusters' CAM++
# embeddings (average linkage; centroid linkage merged everything, since centroids of
# unit vectors shrink towards each other), calibrated on the dev set and checked on the
# long-form builds (benchmarks.quality).
THRESHOLD = 0.4
MIN_CLUSTER_SIZE = 2  # local speakers; smaller clusters join the nearest big one
MIN_CLEAN_S = 1.0  # clean speech a local speaker needs to take part in clustering


def assign_clusters(emb: np.ndarray, clean: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Cluster index of each (window, local speaker); -1 where the speaker is silent."""
    usable = active & (clean >= MIN_CLEAN_S) & ~np.isnan(emb).any(axis=2)
    if usable.sum() < 2:  # nothing to compare: one speaker (or none where nothing is usable)
        return np.where(active, 0, -1)
    train = emb[usable]
    labels = fcluster(linkage(train, method="average", metric="cosine"), THRESHOLD, "distance") - 1
    centroids = _big_cluster_centroids(train, labels)
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


def _big_cluster_centroids(train: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit centroids of clusters with at least MIN_CLUSTER_SIZE members (all if none is)."""
    sizes = np.bincount(labels)
    big = np.flatnonzero(sizes >= MIN_CLUSTER_SIZE)
    if not len(big):
        big = np.arange(len(sizes))
    centroids = np.stack([train[labels == c].mean(axis=0) for c in big])
    return cast(np.ndarray, centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-8))
