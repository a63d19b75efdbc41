"""Fault injection for tests and chaos runs: faults only, never fake results.

``PIPELINE_FAULT_OOM_ABOVE_BATCH=N`` makes the real batching code raise
``torch.cuda.OutOfMemoryError`` for any batch larger than N (0: every batch), exactly
where a GPU would, so the OOM handling (halving, escalation) runs for real on a CPU
machine. ``PIPELINE_FAULT_STALL_S`` makes named steps slow (``stall``);
``PIPELINE_FAULT_HANG`` makes one hang for good (``hang``). Unset in production.
"""

from __future__ import annotations

import os
import threading
import time


def check_batch_memory(batch_size: int) -> None:
    limit = os.environ.get("PIPELINE_FAULT_OOM_ABOVE_BATCH")
    if limit is not None and batch_size > int(limit):
        import torch

        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory (injected by PIPELINE_FAULT_OOM_ABOVE_BATCH={limit}, batch {batch_size})"
        )


def stall(point: str) -> None:
    """``PIPELINE_FAULT_STALL_S="transcode=15,model=15"`` holds the named step (transcode,
    model, cluster, commit, export: after each shard) for that
    many seconds, as a slow link, disk or GPU would, so the heartbeats of a long single
    step are tested for real. Sleeps in short slices: a cancelled attempt is stopped
    (the SDK raises in this thread) within a slice, as real Python-level work would be."""
    spec = os.environ.get("PIPELINE_FAULT_STALL_S")
    if not spec:
        return
    stalls = dict(item.split("=", 1) for item in spec.split(",") if "=" in item)
    if point not in stalls:
        return
    deadline = time.monotonic() + float(stalls[point])
    while time.monotonic() < deadline:
        time.sleep(0.1)


_hung: set[str] = set()


def hang(point: str) -> None:
    """``PIPELINE_FAULT_HANG="model"`` makes the named step (model: a chunk of a model
    stage) stop making progress, the first time this process reaches it, while the
    process lives on and heartbeats: in Python (sleeping in slices, as a loop waiting on
    something that never comes), or with ``model:native`` inside a native call that
    never returns (a lock nobody releases: a hung CUDA kernel or a dead disk read),
    which no exception raised into the thread can end."""
    spec = os.environ.get("PIPELINE_FAULT_HANG", "")
    kinds = dict((item.split(":", 1) + ["python"])[:2] for item in spec.split(",") if item)
    if point not in kinds or point in _hung:
        return
    _hung.add(point)
    if kinds[point] == "native":
        never = threading.Lock()
        never.acquire()
        never.acquire()  # waits in native code for a release that never comes
    while True:
        time.sleep(0.1)
