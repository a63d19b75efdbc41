"""Chunked model stages that survive preemption and CUDA out-of-memory.

A long recording is processed chunk by chunk. After each chunk its result goes to
storage (``_work/{video}/{stage}/{input}/chunk-00007.npz``, shared by the attempts that
work on the same input: a chunk depends on nothing else) and the activity heartbeats
``ChunkProgress``: the next chunk, where partial results live, the batch size and the
OOM count. A new attempt, on this machine or another, reads the last heartbeat
details and the stored chunks and carries on from there.

- SIGTERM / eviction notice: the worker starts shutting down; between chunks the
  activity sees it, and fails at once with the retryable ``WorkerShutdown`` so
  another worker resumes within seconds instead of after the heartbeat timeout.
- CUDA OOM: memory is freed, the halved batch size goes into the heartbeat details and
  the attempt fails retryably (``CudaOutOfMemory``); the retry policy brings the next
  attempt, which starts with the halved batch. If batch 1 does not fit,
  ``GpuMemoryExhausted`` (non-retryable) tells the workflow to move the video to a
  larger GPU class.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel
from temporalio import activity

from activities import metrics
from activities.attempts import StageContext
from activities.fencing import FencedWrites
from activities.runtime import Runtime
from core.analysis import gpu_memory
from core.contracts.errors import CudaOutOfMemory, GpuMemoryExhausted, WorkerShutdown
from core.service import faults
from core.store import layout


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
            results.append(_load(store.get_bytes(key)))
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
        try:
            faults.stall("model")
            faults.hang("model")
            result = compute(index, progress.batch_size)
        except Exception as exc:
            if not gpu_memory.is_cuda_oom(exc):
                raise
            raise _after_oom(stage, index, progress, progress_key, ctx, writes) from None
        writes.put_bytes(key, _dump(result))
        results.append(result)
        computed.append(index)
        progress = progress.model_copy(update={"chunk": index + 1})
        heart.beat(progress.model_dump())
        log.info("chunk.computed", stage=stage, chunk=index, of=num_chunks, batch_size=progress.batch_size)
    return ChunkRun(results=results, computed=computed, progress=progress)


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


def _dump(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _load(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as npz:
        return {name: npz[name] for name in npz.files}
