"""claim_audio: is a downloaded video's audio new, a copy of an earlier video's, or partly
shared with one? And for a copy: where its original stands, and letting go of an
original that will never commit.

The claim reads the claim log (core/store/audio_claims.py) to its end into an in-memory
index (core/corpus/audio_index.py), matches the new fingerprint in full against the few
videos the index names, and creates the log's next entry with its verdict. Another
claimer that took that number first makes it read on and decide again, so whatever the
order videos arrive in, and however many workers claim, each recording has exactly one
original: the first entry that claimed it. A retried claim finds its video's entry and
answers it again.

One index per worker process, caught up before each claim and kept between them; claims
in one process run one at a time.
"""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.attempts import stage
from activities.runtime import Activities, Runtime
from core.contracts.corpus import ClaimEntry, OriginalCheck, OriginalState
from core.contracts.errors import ClaimContended
from core.contracts.ids import video_workflow_id
from core.contracts.stages import Stage
from core.contracts.video import AudioClaim, ClaimRequest
from core.corpus.audio_index import AudioIndex, Earlier, index_keys, judge
from core.corpus.fingerprints import Fingerprint
from core.service.temporal import connect
from core.store.audio_claims import ClaimLog
from core.store.commit import read_metadata

READ_THREADS = 16  # parallel GETs of claim log entries
READ_WINDOW = 256  # entries read before they are indexed (each holds a fingerprint: ~1.3 KiB an audio minute)
MAX_RACES = 20  # times a claim reads on after losing its number before it gives up (retried)


class ClaimedAudio:
    """What this process has read of the claim log: the index of claimed audio, and each
    video's latest entry."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.index = AudioIndex()
        self.head = 0  # the last entry read
        self.latest: dict[str, tuple[int, ClaimEntry]] = {}

    def catch_up(self, log: ClaimLog) -> None:
        """Read the entries after the last one read, in order (a worker's first claim
        reads the whole log: its GETs in parallel)."""
        numbers = log.numbers_after(self.head)
        if len(numbers) <= 1:
            for seq in numbers:
                self.apply(seq, log.read(seq))
            return
        with ThreadPoolExecutor(READ_THREADS) as pool:
            for start in range(0, len(numbers), READ_WINDOW):  # bounded in memory: a window at a time
                window = numbers[start : start + READ_WINDOW]
                for seq, entry in zip(window, pool.map(log.read, window), strict=True):
                    self.apply(seq, entry)

    def apply(self, seq: int, entry: ClaimEntry, keys: np.ndarray | None = None) -> None:
        """Take in entry ``seq``; ``keys``: its fingerprint's index keys, when the caller
        has them (its own claim), so they are not decoded again."""
        self.head = max(self.head, seq)
        self.latest[entry.video_id] = (seq, entry.model_copy(update={"fingerprint": ""}))  # keys suffice
        if entry.kind == "release":
            self.index.leave_out(entry.video_id)
        elif entry.duplicate_of is None:  # a copy is not indexed: its original answers for it
            self.index.add(entry.video_id, index_keys(_fingerprint(entry)) if keys is None else keys)

    def standing(self, video_id: str) -> tuple[int, ClaimEntry] | None:
        """``video_id``'s claim if it still stands: not released, and not a copy of an
        original since released (that copy claims again)."""
        if not self.holds(video_id):
            return None
        seq, entry = self.latest[video_id]
        if entry.duplicate_of is not None and not self.holds(entry.duplicate_of):
            return None
        return seq, entry

    def holds(self, video_id: str) -> bool:
        """Whether ``video_id``'s latest entry is a claim (not released)."""
        latest = self.latest.get(video_id)
        return latest is not None and latest[1].kind == "claim"


class AudioClaimActivities(Activities):
    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt)
        self.claimed = ClaimedAudio()

    @activity.defn
    def claim_audio(self, req: ClaimRequest) -> AudioClaim:
        return _claim(self.rt, self.claimed, req)

    @activity.defn
    async def original_state(self, check: OriginalCheck) -> OriginalState:
        """Committed (metadata.json), running (its workflow is open) or lost."""
        rt = self.rt
        with stage(rt, video_id=check.duplicate):
            if read_metadata(rt.store, check.video_id) is not None:
                return OriginalState.COMMITTED
            client = await connect(rt.settings)
            try:
                described = await client.get_workflow_handle(video_workflow_id(check.video_id)).describe()
            except RPCError:  # no such workflow (its history expired): it will not commit
                return OriginalState.LOST
            if described.status == WorkflowExecutionStatus.RUNNING:
                return OriginalState.RUNNING
            # closed; it may have committed between the two reads
            if read_metadata(rt.store, check.video_id) is not None:
                return OriginalState.COMMITTED
            return OriginalState.LOST

    @activity.defn
    def release_claim(self, check: OriginalCheck) -> None:
        """Let go of a lost original's claim, so the videos waiting on it claim again."""
        with stage(self.rt, video_id=check.duplicate) as ctx, self.claimed.lock:
            log = ClaimLog(self.rt.store)
            for _ in range(MAX_RACES):
                self.claimed.catch_up(log)
                if not self.claimed.holds(check.video_id):
                    return  # released by another waiting copy, or claimed again since
                entry = ClaimEntry(kind="release", video_id=check.video_id, released_by=check.duplicate)
                seq = self.claimed.head + 1
                if log.append(seq, entry):
                    self.claimed.apply(seq, entry)
                    ctx.log.warning("claim.released", original=check.video_id, seq=seq)
                    return
            raise ClaimContended(f"the claim log moved on {MAX_RACES} times while releasing {check.video_id}")


def _claim(rt: Runtime, claimed: ClaimedAudio, req: ClaimRequest) -> AudioClaim:
    with stage(rt, Stage.CLAIM, req.video_id) as ctx:
        started = time.perf_counter()
        data = rt.store.get_bytes(req.fingerprint_key)
        fp = Fingerprint.from_bytes(data)
        keys = index_keys(fp)
        log = ClaimLog(rt.store)
        with claimed.lock:
            for _ in range(MAX_RACES):
                claimed.catch_up(log)
                prior = claimed.standing(req.video_id)
                if prior is not None:  # an earlier try (or run) of this video claimed
                    seq, entry = prior
                    ctx.log.info("claim.reused", seq=seq)
                    return _answer(rt, seq, entry, 0, started)
                candidates = [vid for vid, _votes in claimed.index.candidates(keys, exclude={req.video_id})]
                # matched in claim order: of two earlier copies, the first claimed is the original
                earlier = sorted(candidates, key=lambda vid: claimed.latest[vid][0])
                judged = judge(fp, req.duration_s, (_earlier(log, claimed, vid) for vid in earlier))
                entry = ClaimEntry(
                    kind="claim",
                    video_id=req.video_id,
                    duration_s=req.duration_s,
                    fingerprint=base64.b64encode(data).decode(),
                    duplicate_of=judged.duplicate_of,
                    shared=judged.shared,
                )
                seq = claimed.head + 1
                if log.append(seq, entry):
                    claimed.apply(seq, entry, keys)
                    ctx.log.info(
                        "claim.done",
                        seq=seq,
                        duplicate_of=entry.duplicate_of,
                        shared=len(entry.shared),
                        candidates=len(earlier),
                        indexed=len(claimed.index),
                    )
                    return _answer(rt, seq, entry, len(earlier), started)
                ctx.log.info("claim.raced", seq=seq)
        raise ClaimContended(f"the claim log moved on {MAX_RACES} times while claiming {req.video_id}")


def _earlier(log: ClaimLog, claimed: ClaimedAudio, video_id: str) -> Earlier:
    seq, _ = claimed.latest[video_id]
    entry = log.read(seq)  # the index keeps keys only: the fingerprint is read again
    return Earlier(video_id=video_id, fingerprint=_fingerprint(entry), duration_s=entry.duration_s)


def _fingerprint(entry: ClaimEntry) -> Fingerprint:
    return Fingerprint.from_bytes(base64.b64decode(entry.fingerprint))


def _answer(rt: Runtime, seq: int, entry: ClaimEntry, candidates: int, started: float) -> AudioClaim:
    return AudioClaim(
        video_id=entry.video_id,
        seq=seq,
        duplicate_of=entry.duplicate_of,
        shared=entry.shared,
        candidates=candidates,
        worker_id=rt.worker_id,
        attempt=activity.info().attempt,
        seconds=round(time.perf_counter() - started, 3),
    )
