"""From overlapping windows to the recording: one frame grid, then speaker turns.

Windows overlap (each 10 s, one every step), so every frame of the recording is seen by
several of them. What the windows say per frame (who speaks, how many speak, whether
exactly one does, whether silero hears speech) is laid onto one grid and averaged over
the windows that cover each frame; the turns are runs of frames on that grid.
"""

from __future__ import annotations

import numpy as np

from core.contracts.video import Segment

RECONSTRUCT_BLOCK_S = 600.0  # frame grid built this much at a time: bounded memory
MAX_SPEAKERS_PER_FRAME = 2  # segmentation-3.0's powerset: at most 2 at once


def overlay(per_window: np.ndarray, offsets: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the windows' (windows, frames) values on each of the grid's
    ``total`` frames; window ``w`` starts at frame ``offsets[w]``. NaN means no opinion."""
    n_frames = per_window.shape[1]
    summed, seen = np.zeros(total), np.zeros(total)
    for w, o in enumerate(offsets):
        k = max(0, min(total, o + n_frames) - o)
        values = per_window[w, :k].astype(np.float64)
        known = ~np.isnan(values)
        summed[o : o + k] += np.where(known, values, 0.0)
        seen[o : o + k] += known
    return summed, seen


def speaker_frames(
    segmentation: np.ndarray,
    clusters: np.ndarray,
    offsets: np.ndarray,
    total: int,
    step: float,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """(frames, clusters) activity: each frame keeps as many speakers as the windows over
    it count on average (so overlapped speech goes to both), the clusters those windows
    give most activity there; none where ``allowed`` is False."""
    n_frames, local_speakers = segmentation.shape[1], segmentation.shape[2]
    num_clusters = int(clusters.max()) + 1
    block = int(RECONSTRUCT_BLOCK_S / step)
    active = np.zeros((total, num_clusters), dtype=bool)
    for lo in range(0, total, block):
        hi = min(total, lo + block)
        score = np.zeros((hi - lo, num_clusters), dtype=np.float32)
        count = np.zeros(hi - lo, dtype=np.float32)
        seen = np.zeros(hi - lo, dtype=np.float32)
        for w in np.flatnonzero((offsets < hi) & (offsets + n_frames > lo)):
            a, b = max(lo, offsets[w]), min(hi, offsets[w] + n_frames)
            local = segmentation[w, a - offsets[w] : b - offsets[w]]
            seen[a - lo : b - lo] += 1
            count[a - lo : b - lo] += local.sum(axis=1)
            for k in range(local_speakers):
                if clusters[w, k] >= 0:
                    score[a - lo : b - lo, clusters[w, k]] += local[:, k]
        speakers = np.floor(count / np.maximum(seen, 1) + 0.5).astype(int)  # mean count, rounded
        if allowed is not None:
            speakers[~allowed[lo:hi]] = 0
        ranked = np.argsort(-score, axis=1, kind="stable")
        for rank in range(min(MAX_SPEAKERS_PER_FRAME, num_clusters)):
            rows = np.flatnonzero((speakers > rank) & (score[np.arange(hi - lo), ranked[:, rank]] > 0))
            active[lo + rows, ranked[rows, rank]] = True
    return active


def frames_to_turns(active: np.ndarray, step: float, centre: float, duration_s: float) -> list[Segment]:
    """Runs of active frames per speaker, as turns (frame i covers step around its centre)."""
    turns: list[Segment] = []
    for k in range(active.shape[1]):
        padded = np.concatenate([[False], active[:, k], [False]]).astype(np.int8)
        for a, b in np.flatnonzero(np.diff(padded)).reshape(-1, 2):
            s = round(max(0.0, a * step + centre - step / 2), 3)
            e = round(min(duration_s, b * step + centre - step / 2), 3)
            if e > s:
                turns.append(Segment(start=s, end=e, speaker=str(k)))
    return turns
