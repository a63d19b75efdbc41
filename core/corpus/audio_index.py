"""Which earlier videos a new video's audio may repeat, found without matching it against
every one of them: an inverted index of a few keys from each fingerprint.

Matching two fingerprints in full (``fingerprints.overlaps``) costs milliseconds; a
corpus holds hundreds of thousands. So each claimed video leaves a sample of keys here,
and a new video's own keys vote for the videos that hold them; only the few with votes
are fetched and matched in full (``judge``).

A key is the top 16 bits of two items ``PAIR_GAP`` apart (~0.5 s): one item's 16 bits
recur by chance across a corpus, a pair's 32 rarely do. Which keys a video keeps is
decided by the key itself (its hash starts with enough zero bits), not by where it lies,
so a copy trimmed, shifted or cut keeps the same keys where its audio is the same. A
re-encode changes a few bits of each item, so only some of a copy's keys hold: a few
percent to all of them under the duplicate benchmark's Opus, MP3 and 8 kHz copies, and
``MIN_VOTES`` of them name a candidate. A long video keeps one key in 16 (~30 an audio
minute); a short one more, down to all of them under a minute, or a 30 s clip would
keep too few to be found. The kept sets nest (a key with four zero bits has one), so
two videos share the keys the sparser of the two keeps.

The index lives in the memory of the process that claims (activities/audio_claims.py):
8 bytes a key, ~240 bytes an audio minute of a long video. It only grows; a released
video is left out of answers, not removed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np

from core.contracts.video import Relation, SharedAudio
from core.corpus.fingerprints import Fingerprint, overlaps, relation

PAIR_GAP = 4  # items between a key's two halves
# One key in 2**bits is kept, those whose hash starts with that many zero bits: none
# dropped up to DENSE_KEYS keys, then a bit more for each doubling, up to MAX_SAMPLE_BITS.
DENSE_KEYS = 512  # about a minute of audio
MAX_SAMPLE_BITS = 4
MIN_VOTES = 2  # keys a candidate must share with the new video
# the best-voted candidates matched in full (a read of each one's claim and a match of
# 0.2-20 ms): a short video that shares a channel's intro with many earlier ones gets
# their votes too, and its real original must still be among them
MAX_CANDIDATES = 32
# A key held by more videos than this says nothing (a tone, a common sting): it does not vote.
MAX_HOLDERS = 1000
_HASH = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads the keys' bits


def index_keys(fp: Fingerprint) -> np.ndarray:
    """The keys of ``fp`` that the index keeps, sorted and unique (uint32)."""
    top = (fp.items >> np.uint32(16)).astype(np.uint64)
    if len(top) <= PAIR_GAP:
        return np.zeros(0, np.uint32)
    pairs = (top[:-PAIR_GAP] << np.uint64(16)) | top[PAIR_GAP:]
    bits = (
        min(MAX_SAMPLE_BITS, max(0, int(np.log2(len(pairs) / DENSE_KEYS)))) if len(pairs) > DENSE_KEYS else 0
    )
    if bits:
        pairs = pairs[((pairs * _HASH) >> np.uint64(64 - bits)) == 0]
    return np.unique(pairs.astype(np.uint32))


class AudioIndex:
    """Keys -> the videos holding them. Videos are numbered in the order they are added
    (the claim log's order), so answers are the same in every process that read the log."""

    def __init__(self) -> None:
        self._videos: list[str] = []
        self._number: dict[str, int] = {}
        self._left_out: set[int] = set()
        # sorted runs of entries: a key in the high 32 bits, its video's number in the low
        # 32, so one array sorts both and a merge of two runs is one stable sort (linear)
        self._runs: list[np.ndarray] = []
        self._pending: list[tuple[np.ndarray, int]] = []

    def __len__(self) -> int:
        return len(self._videos) - len(self._left_out)

    def add(self, video_id: str, keys: np.ndarray) -> None:
        """Index a video's keys; a video added again (it claimed again after a release)
        answers again under its first number."""
        number = self._number.get(video_id)
        if number is None:
            number = self._number[video_id] = len(self._videos)
            self._videos.append(video_id)
        self._left_out.discard(number)
        self._pending.append((keys, number))

    def leave_out(self, video_id: str) -> None:
        if video_id in self._number:
            self._left_out.add(self._number[video_id])

    def candidates(self, keys: np.ndarray, exclude: Collection[str] = ()) -> list[tuple[str, int]]:
        """Videos sharing at least ``MIN_VOTES`` of ``keys`` (but ``exclude``), with their
        votes: the most first, then the earliest added; at most ``MAX_CANDIDATES``."""
        self._flush()
        wide = keys.astype(np.uint64) << np.uint64(32)
        found = []
        for run in self._runs:
            lo = np.searchsorted(run, wide, "left")
            hi = np.searchsorted(run, wide | np.uint64(0xFFFFFFFF), "right")
            held = hi - lo
            voting = (held > 0) & (held <= MAX_HOLDERS)
            found += [run[a:b] for a, b in zip(lo[voting].tolist(), hi[voting].tolist(), strict=True)]
        if not found:
            return []
        numbers = (np.concatenate(found) & np.uint64(0xFFFFFFFF)).astype(np.int64)
        videos, votes = np.unique(numbers, return_counts=True)  # videos ascending
        dropped = self._left_out | {self._number[v] for v in exclude if v in self._number}
        keep = (votes >= MIN_VOTES) & ~np.isin(videos, list(dropped))
        videos, votes = videos[keep], votes[keep]
        order = np.lexsort((videos, -votes))[:MAX_CANDIDATES]
        return [(self._videos[int(videos[i])], int(votes[i])) for i in order]

    def memory_bytes(self) -> int:
        return sum(run.nbytes for run in self._runs) + sum(k.nbytes for k, _ in self._pending)

    def _flush(self) -> None:
        if not self._pending:
            return
        entries = np.concatenate(
            [(k.astype(np.uint64) << np.uint64(32)) | np.uint64(n) for k, n in self._pending]
        )
        self._pending = []
        entries.sort()
        self._runs.append(entries)
        # like a binary counter: a run is merged into the one before while it is at least
        # half its size, so there are few runs and each entry is merged few times
        while len(self._runs) > 1 and 2 * len(self._runs[-1]) >= len(self._runs[-2]):
            newer, older = self._runs.pop(), self._runs.pop()
            merged = np.concatenate([older, newer])
            del newer, older
            merged.sort(kind="stable")  # two sorted runs: timsort merges them in one pass
            self._runs.append(merged)


@dataclass(frozen=True)
class Earlier:
    """A candidate, as the claim log holds it."""

    video_id: str
    fingerprint: Fingerprint
    duration_s: float


@dataclass(frozen=True)
class Judgement:
    duplicate_of: str | None
    shared: list[SharedAudio]


def judge(new: Fingerprint, new_s: float, earlier: Iterable[Earlier]) -> Judgement:
    """What a new video is to the earlier videos given (in claim order): a duplicate of
    the first that is the same recording; else the stretches it shares with each."""
    shared: list[SharedAudio] = []
    for other in earlier:
        found = overlaps(new, other.fingerprint)
        kind = relation(found, new_s, other.duration_s)
        if kind is None:
            continue
        if kind is Relation.SAME:
            return Judgement(duplicate_of=other.video_id, shared=[])
        shared.extend(
            SharedAudio(
                video_id=other.video_id,
                relation=kind,
                start_s=round(o.query_start_s, 2),
                end_s=round(min(o.query_end_s, new_s), 2),
                other_start_s=round(o.reference_start_s, 2),
                other_end_s=round(min(o.reference_end_s, other.duration_s), 2),
                bit_error=round(o.bit_error, 4),
            )
            for o in found
        )
    return Judgement(duplicate_of=None, shared=sorted(shared, key=lambda s: (s.start_s, s.video_id)))
