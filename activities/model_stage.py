"""What every model stage does around its own work: reuse, or compute in checkpointed
chunks that survive preemption and CUDA out-of-memory.

A model stage (diarize, music, embed, labels) works on one input, named by the attempt
ids of the stages it reads. If an earlier attempt already stored its result for that
input (its reply to the workflow may have been lost), that result is returned as it is.
Otherwise this attempt computes chunk by chunk, writes its result under its own attempt
id through fenced writes (``activities/fencing.py``), and returns the summary. A stage
module keeps only what is its own: what one chunk computes and what its result holds.

After each chunk its result goes to storage (``_work/{video}/{stage}/{input}/chunk-00007.npz``,
shared by the attempts that work on the same input: a chunk depends on nothing else)
and the activity heartbeats ``ChunkProgress``: the next chunk, where partial results
live, the batch size and the OOM count. A new attempt, on this machine or another,
reads the last heartbeat details and the stored chunks and carries on from there.

- SIGTERM / eviction notice: the worker starts shutting down; between chunks the
  activity sees it, and fails at once with the retryable ``WorkerShutdown`` so
  another worker resumes within seconds instead of after the heartbeat timeout.
- CUDA OOM: memory is freed, the halved batch size goes into the heartbeat details and
  the attempt fails retryably (``CudaOutOfMemory``); the retry policy brings the next
  attempt, which starts with the halved batch. If batch 1 does not fit,
  ``GpuMemoryExhausted`` (non-retryable) tells the workflow to move the video to a
  larger GPU class.
- Host memory: before each chunk, a worker past ``MEMORY_GUARD_SHARE`` of its memory
  (``core.service.memory``) fails the stage with ``HostMemoryExhausted`` (non-retryable),
  and the workflow moves the video up the same way, before the kernel kills the worker.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
from pydantic import BaseModel
from temporalio import activity

from activities import metrics
from activities.attempts import StageContext, stage
from activities.fencing import FencedWrites, attempt_id, reusable_result
from activities.runtime import Activities, Runtime
from activities.scratch import scratch_dir
from core.analysis import gpu_memory
from core.contracts.errors import CudaOutOfMemory, GpuMemoryExhausted, HostMemoryExhausted, WorkerShutdown
from core.contracts.stages import Stage
from core.contracts.video import AudioRef, StageSummary
from core.service import faults, memory
from core.store import layout
from core.store.layout import VideoKeys

if TYPE_CHECKING:
    from core.analysis.audio import Recording

Result = TypeVar("Result", bound=BaseModel)
Summary = TypeVar("Summary", bound=StageSummary)
RESULT_SUMMARY = "summary"  # the field of a finished result file that holds its summary


@dataclass
class StageAttempt:
    """One attempt of a model stage that has work to do."""

    stage: Stage
    source: str  # what the input is: the attempt ids of the results it reads
    ctx: StageContext
    rt: Runtime
    keys: VideoKeys
    writes: FencedWrites
    attempt_id: str = field(default_factory=attempt_id)
    started: float = field(default_factory=time.perf_counter)

    @property
    def folder(self) -> str:
        """Where this input's chunk checkpoints and every attempt's results live."""
        return self.keys.stage_dir(self.stage, self.source)

    def key(self, name: str) -> str:
        """A result file of this attempt (its own key: overlapping attempts never share one)."""
        return self.keys.attempt_key(self.stage, self.source, self.attempt_id, name)

    @contextlib.contextmanager
    def open_audio(self, audio: AudioRef) -> Iterator[Recording]:
        """The 16 kHz analysis audio on this attempt's scratch disk, read span by span
        (memory does not grow with its length; the copy is gone when the block ends);
        the stage's seconds count from here (its compute)."""
        from core.analysis.audio import Recording  # soundfile: loaded where audio is read

        with scratch_dir(self.rt, audio.video_id) as scratch:
            path = self.rt.store.download_file(audio.analysis_key, scratch / "analysis_16k.wav")
            with Recording(path) as recording:
                self.started = time.perf_counter()
                self.ctx.audio_s = recording.duration_s
                yield recording

    def chunks(
        self, num_chunks: int, compute: Callable[[int, int], dict[str, np.ndarray]], initial_batch: int
    ) -> ChunkRun:
        """``compute(index, batch_size)`` for each chunk, resumed from the stored ones."""
        return run_chunks(
            self.rt, self.stage, self.folder, num_chunks, compute, initial_batch, self.ctx, self.writes
        )

    def summary(self, run: ChunkRun, key: str) -> dict[str, Any]:
        """The fields every stage result carries (``core.contracts.video.StageSummary``)."""
        progress = run.progress
        return {
            "key": self.key(key),
            "attempt_id": self.attempt_id,
            "worker_id": self.rt.worker_id,
            "seconds": round(time.perf_counter() - self.started, 3),
            "attempt": activity.info().attempt,
            "batch_sizes": progress.batch_sizes_tried if progress else [],
            "oom_count": progress.oom_count if progress else 0,
            "chunks_computed": len(run.computed),
            **self.ctx.memory_fields(),
        }

    def finish(self, result: Summary, key: str | None = None, **bulk: Any) -> Summary:
        """Write the file that marks this attempt finished (``result.key`` unless named),
        last: the summary that ``reuse_or_run`` returns beside the stage's bulk."""
        self.writes.put_json(key or result.key, {RESULT_SUMMARY: result.model_dump(), **bulk})
        return result


class ModelStage(Activities, Generic[Result]):
    """A model stage's activities: ``reuse_or_run`` around what the stage computes.
    A subclass names its stage, the file its finished attempt writes last, and that
    file's summary type."""

    stage: Stage
    result_file: str
    result_type: type[Result]

    def reuse_or_run(self, video_id: str, source: str, work: Callable[[StageAttempt], Result]) -> Result:
        """The stored result for this input (``result_file``, written last by an
        attempt that finished), or ``work``'s. ``source`` names the input: a new
        attempt of an upstream stage is new input, so nothing stale is reused."""
        rt, name = self.rt, self.stage
        keys = rt.store.keys(video_id)
        with stage(rt, name, video_id, watch_progress=True) as ctx:
            done = reusable_result(rt.store, keys.stage_dir(name, source), self.result_file)
            if done is not None:
                ctx.log.info(f"{name}.reused")
                return self.result_type.model_validate(done[RESULT_SUMMARY])
            return work(StageAttempt(name, source, ctx, rt, keys, FencedWrites(rt.store, keys)))


# --- checkpointed chunks -----------------------------------------------------------------


class ChunkProgress(BaseModel):
    """Heartbeat details of a chunked stage (JSON in the heartbeat, read by a retry)."""

    stage: str
    gpu_class: str = ""  # batch sizes learnt on one class say nothing about another
    chunk: int = 0  # next chunk to compute; chunks before it are in storage
    num_chunks: int = 0
    partial_prefix: str = ""
    batch_size: int = 0
    oom_count: int = 0
    batch_sizes_tried: list[int] = []


@dataclass
class ChunkRun:
    """What a chunked stage reports back: results in order, and how it went."""

    results: list[dict[str, np.ndarray]]
    computed: list[int] = field(default_factory=list)  # chunk indices computed by this attempt
    progress: ChunkProgress | None = None


def previous_progress(rt: Runtime, stage: str, progress_key: str) -> ChunkProgress | None:
    """What an earlier attempt on this GPU class learnt about batch sizes: the progress
    it stored at its last OOM (authoritative), else its last heartbeat details."""
    stored = rt.store.get_json_or_none(progress_key)
    details = activity.info().heartbeat_details
    for candidate in (stored, details[0] if details else None):
        if isinstance(candidate, dict):
            try:
                progress = ChunkProgress.model_validate(candidate)
            except ValueError:
                continue
            if progress.stage == stage and progress.gpu_class == rt.gpu_class and progress.batch_size >= 1:
                return progress
    return None


def run_chunks(
    rt: Runtime,
    stage: str,
    prefix: str,
    num_chunks: int,
    compute: Callable[[int, int], dict[str, np.ndarray]],
    initial_batch: int,
    ctx: StageContext,
    writes: FencedWrites,
) -> ChunkRun:
    """Compute chunks ``0..num_chunks-1`` with ``compute(index, batch_size)``, resuming
    from the chunks stored under ``prefix``, checkpointing each, heartbeating progress."""
    store = rt.store
    progress_key = layout.progress_key(prefix)
    previous = previous_progress(rt, stage, progress_key)
    progress = ChunkProgress(
        stage=stage,
        gpu_class=rt.gpu_class,
        num_chunks=num_chunks,
        partial_prefix=prefix,
        batch_size=previous.batch_size if previous else initial_batch,
        oom_count=previous.oom_count if previous else 0,
        batch_sizes_tried=previous.batch_sizes_tried if previous else [],
    )
    stored = set(store.list_keys(prefix))
    results: list[dict[str, np.ndarray]] = []
    computed: list[int] = []
    heart, log = ctx.heart, ctx.log
    for index in range(num_chunks):
        key = layout.chunk_key(prefix, index)
        if key in stored:
            results.append(npz_arrays(store.get_bytes(key)))
            continue
        if activity.is_worker_shutdown():
            progress = progress.model_copy(update={"chunk": index})
            heart.beat(progress.model_dump())
            log.warning("chunks.worker_shutdown", chunk=index, of=num_chunks)
            raise WorkerShutdown(
                f"{stage}: worker shutting down at chunk {index}/{num_chunks}; resume elsewhere"
            )
        if progress.batch_size not in progress.batch_sizes_tried:
            progress = progress.model_copy(
                update={"batch_sizes_tried": [*progress.batch_sizes_tried, progress.batch_size]}
            )
        _check_memory(rt, stage, index, num_chunks)
        try:
            faults.stall("model")
            faults.hang("model")
            result = compute(index, progress.batch_size)
        except Exception as exc:
            if not gpu_memory.is_cuda_oom(exc):
                raise
            raise _after_oom(stage, index, progress, progress_key, ctx, writes) from None
        writes.put_bytes(key, npz_bytes(result))
        results.append(result)
        computed.append(index)
        progress = progress.model_copy(update={"chunk": index + 1})
        heart.beat(progress.model_dump())
        log.info("chunk.computed", stage=stage, chunk=index, of=num_chunks, batch_size=progress.batch_size)
    return ChunkRun(results=results, computed=computed, progress=progress)


def _check_memory(rt: Runtime, stage: str, index: int, num_chunks: int) -> None:
    """Stop before a chunk the worker may not survive: past MEMORY_GUARD_SHARE of its
    limit, the kernel is near to killing it, and every stage it runs with it."""
    limit, used = rt.memory_limit_mib, memory.status_mib()
    if limit and used > memory.MEMORY_GUARD_SHARE * limit:
        raise HostMemoryExhausted(
            f"{stage}: the worker holds {used:.0f} MiB of its {limit:.0f} MiB before chunk "
            f"{index}/{num_chunks}; needs a class with more memory"
        )


def _after_oom(
    stage: str,
    index: int,
    progress: ChunkProgress,
    progress_key: str,
    ctx: StageContext,
    writes: FencedWrites,
) -> Exception:
    gpu_memory.free_gpu_memory()
    halved = gpu_memory.halved(progress.batch_size)
    progress = progress.model_copy(
        update={"chunk": index, "batch_size": halved, "oom_count": progress.oom_count + 1}
    )
    writes.put_json(progress_key, progress.model_dump())
    ctx.heart.beat(progress.model_dump())
    ctx.log.warning(
        "chunks.cuda_oom", stage=stage, chunk=index, next_batch_size=halved, oom_count=progress.oom_count
    )
    if halved < 1:
        return GpuMemoryExhausted(
            f"{stage}: CUDA out of memory at batch size 1 (chunk {index}); needs a larger GPU class"
        )
    metrics.record_oom_halving(stage, progress.gpu_class)
    return CudaOutOfMemory(
        f"{stage}: CUDA out of memory at batch {progress.batch_size * 2}; retrying with {halved}",
        details=progress.model_dump(),
    )


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Named arrays as one .npz: what a chunk checkpoint holds."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npz_arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as npz:
        return {name: npz[name] for name in npz.files}
