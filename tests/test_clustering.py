"""Who is who from the local speakers' embeddings (core/analysis/diarization/clustering.py).

Why: the clustering decides the speaker labels a trainer uses, from arrays alone. These
tests give it voices whose geometry is known (how alike two voices' centroids are, how
far one voice's local speakers scatter), built in CAM++'s 192 dimensions, and check
the decisions each step exists for: the count and the membership on an episode longer
than the pairwise step compares, a drifting voice merged, close voices kept apart, a
short recording, the one-cluster-per-window rule, two close voices heard side by side kept
apart, a cluster with almost none of the speech folded, a block of a local speaker moved
to the voice its own speech is. What the real models give on real
audio is measured by test_long_audio and benchmarks.quality.
"""

from __future__ import annotations

import numpy as np

from core.analysis.diarization import clustering

DIM = 192


def voices(count: int, alike: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` unit centroids whose pairwise cosine similarity is ``alike``."""
    shared = rng.standard_normal(DIM)
    basis = np.linalg.qr(np.column_stack([shared, rng.standard_normal((DIM, count))]))[0]
    centroids = np.sqrt(alike) * basis[:, :1].T + np.sqrt(1 - alike) * basis[:, 1 : count + 1].T
    return centroids / np.linalg.norm(centroids, axis=1, keepdims=True)


def local_speakers(centroids: np.ndarray, voice: np.ndarray, scatter: float, rng: np.random.Generator):
    """One local speaker per window, of voice ``voice[w]``, scattered around its centroid:
    (embeddings (W, 3, DIM), clean seconds (W, 3), active (W, 3))."""
    n = len(voice)
    emb = np.full((n, 3, DIM), np.nan, dtype=np.float32)
    noisy = centroids[voice] + scatter * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    emb[:, 0] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    active = np.zeros((n, 3), dtype=bool)
    active[:, 0] = True
    clean = np.where(active, 5.0, 0.0)
    return emb, clean, active


def agreement(found: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of local speakers whose cluster's majority voice is their own."""
    right = 0
    for c in np.unique(found):
        members = truth[found == c]
        right += np.bincount(members).max()
    return right / len(truth)


def test_an_episode_longer_than_the_pairwise_step_compares_keeps_count_and_membership() -> None:
    rng = np.random.default_rng(0)
    centroids = voices(6, 0.3, rng)
    truth = rng.integers(0, 6, size=3 * clustering.MAX_COMPARED)  # more than one pass compares
    emb, clean, active = local_speakers(centroids, truth, 0.6, rng)
    found = clustering.assign_clusters(emb, clean, active)[0][:, 0]
    assert len(np.unique(found)) == 6
    assert agreement(found, truth) == 1.0


def test_a_voice_that_drifts_is_one_speaker_and_close_voices_stay_two() -> None:
    rng = np.random.default_rng(1)
    # voice 0 in two moods whose centroids are alike beyond MERGE_SIMILARITY; voice 1 apart
    # from it, though closer than voices usually are (0.6, still under MERGE_SIMILARITY)
    moods = voices(2, 0.92, rng)
    other = voices(2, 0.6, rng)
    base = moods.mean(axis=0) / np.linalg.norm(moods.mean(axis=0))
    # the second voice, as alike to the first voice's mean as ``other`` are to each other
    rotation = other[1] - (other[1] @ other[0]) * other[0]
    rotation -= (rotation @ base) * base
    second = 0.6 * base + np.sqrt(1 - 0.36) * rotation / np.linalg.norm(rotation)
    assert 0.6 < clustering.MERGE_SIMILARITY < 0.92
    centroids = np.vstack([moods, second])
    truth_mood = rng.integers(0, 3, size=2 * clustering.MIN_SPECTRAL)
    emb, clean, active = local_speakers(centroids, truth_mood, 0.3, rng)
    found = clustering.assign_clusters(emb, clean, active)[0][:, 0]
    person = np.where(truth_mood == 2, 1, 0)
    assert len(np.unique(found)) == 2
    assert agreement(found, person) == 1.0


def test_a_short_recording_finds_its_voices() -> None:
    rng = np.random.default_rng(2)
    centroids = voices(3, 0.2, rng)
    truth = np.repeat(np.arange(3), 6)  # 18 local speakers: under MIN_SPECTRAL
    assert len(truth) < clustering.MIN_SPECTRAL
    emb, clean, active = local_speakers(centroids, truth, 0.5, rng)
    found = clustering.assign_clusters(emb, clean, active)[0][:, 0]
    assert len(np.unique(found)) == 3 and agreement(found, truth) == 1.0


def test_two_local_speakers_of_one_window_never_share_a_cluster() -> None:
    rng = np.random.default_rng(3)
    centroids = voices(2, 0.2, rng)
    truth = np.repeat(np.arange(2), 20)
    emb, clean, active = local_speakers(centroids, truth, 0.4, rng)
    # window 0 gets a second local speaker of its own voice: it must go to the other cluster
    emb[0, 1] = emb[0, 0]
    active[0, 1] = True
    found, _ = clustering.assign_clusters(emb, clean, active)
    assert found[0, 0] != found[0, 1] and found[0, 2] == -1
    assert (found[~active] == -1).all()


def test_local_speakers_too_short_to_compare_are_one_speaker() -> None:
    rng = np.random.default_rng(4)
    emb, clean, active = local_speakers(voices(2, 0.2, rng), np.array([0, 1, 0]), 0.4, rng)
    clean[:] = clustering.MIN_CLEAN_S / 2  # nothing clean enough to take part
    found, _ = clustering.assign_clusters(emb, clean, active)
    assert (found[active] == 0).all() and (found[~active] == -1).all()


def test_a_block_closer_to_another_voice_moves_there_unless_that_voice_is_taken() -> None:
    rng = np.random.default_rng(5)
    centroids = voices(3, 0.2, rng)
    clusters = np.array([[0, -1, -1], [0, 1, -1]])  # window 1: voices 0 and 1 already there
    blocks = np.full((2, 3, 4, DIM), np.nan, dtype=np.float16)  # 4 blocks a window
    blocks[0, 0, :] = centroids[0]
    blocks[0, 0, 2] = centroids[2]  # block 2 of window 0's speaker is voice 2
    blocks[0, 0, 3] = 0.5 * (centroids[0] + centroids[2]) / np.linalg.norm(centroids[0] + centroids[2])
    blocks[1, 0, 1] = centroids[1]  # voice 1 talks there, but window 1 has it already
    blocks[1, 0, 2] = centroids[2]
    found = clustering.recheck_blocks(blocks, clusters, centroids)
    assert found[0, 0].tolist() == [0, 0, 2, 0]  # block 3: halfway, under the margin
    assert found[1, 0].tolist() == [0, 0, 2, 0] and found[1, 1].tolist() == [1] * 4
    assert (found[:, 2] == -1).all()
    one = clustering.recheck_blocks(blocks, clusters, centroids[:1])
    assert (one == clusters[:, :, None]).all(), "one voice: nothing to move to"


def dialogue(centroids: np.ndarray, windows: int, scatter: float, rng: np.random.Generator):
    """Voices 0 and 1 side by side in every window (local speakers 0 and 1), as two
    people in conversation: (embeddings, clean seconds, active)."""
    emb = np.full((windows, 3, DIM), np.nan, dtype=np.float32)
    for k in (0, 1):
        noisy = centroids[k] + scatter * rng.standard_normal((windows, DIM)) / np.sqrt(DIM)
        emb[:, k] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    active = np.zeros((windows, 3), dtype=bool)
    active[:, :2] = True
    return emb, np.where(active, 5.0, 0.0), active


def test_two_voices_alike_beyond_the_merge_rule_stay_two_when_heard_side_by_side() -> None:
    rng = np.random.default_rng(6)
    alike = voices(2, 0.9, rng)  # as alike as one voice in two moods
    assert clustering.MERGE_SIMILARITY < 0.9 and 1 - clustering.AHC_THRESHOLD < 0.9
    for windows in (clustering.MIN_SPECTRAL // 4, clustering.MIN_SPECTRAL):  # both first passes
        emb, clean, active = dialogue(alike, windows, 0.3, rng)
        found, centroids = clustering.assign_clusters(emb, clean, active)
        assert len(centroids) == 2, windows
        assert (found[:, 0] != found[:, 1]).all()
        assert len(np.unique(found[:, 0])) == 1, "each voice is one cluster throughout"


def test_a_cluster_with_almost_none_of_the_speech_is_not_a_speaker() -> None:
    rng = np.random.default_rng(7)
    centroids = voices(3, 0.2, rng)
    windows = 2 * clustering.MIN_SPECTRAL
    truth = rng.integers(0, 2, size=windows)
    rare = int(clustering.MIN_SPEAKER_SHARE / 3 * windows / 2)  # half the share a third voice needs
    truth[rng.choice(windows, size=rare, replace=False)] = 2
    assert rare >= clustering.MIN_CLUSTER_SIZE  # big enough to be a cluster of the first pass
    emb, clean, active = local_speakers(centroids, truth, 0.3, rng)
    found, kept = clustering.assign_clusters(emb, clean, active)
    assert len(kept) == 2
    assert agreement(found[truth < 2, 0], truth[truth < 2]) == 1.0
