"""How many threads one model call may use: the worker's cores shared among its slots.

PyTorch and onnxruntime give each call a pool as large as the machine, and a worker
runs several calls at once (its slots; inside the diarize stage, segmentation beside
the CAM++ trunk) next to ffmpeg decoding the next video. Pool threads then wait,
spinning, for cores that others hold: with torch's default pool and the other core
busy, CAM++ once cost ten times its CPU. So every model call gets the threads it is
given (``use``, once per process, before the first model runs): the cores a worker has
divided by its slots, at least one, unless the setting ``model_threads`` says
otherwise. Parallelism comes from the slots and the stages' own threads, which
never wait on each other.
"""

from __future__ import annotations

import os
import sys

_threads = 1


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def per_call(slots: int, configured: int | None = None) -> int:
    """Threads for each model call of a worker with ``slots`` model slots."""
    return configured if configured else max(1, cores() // max(1, slots))


def use(threads: int) -> None:
    """Every model call of this process from now on uses ``threads`` threads: torch's
    intra-op pool now, and the onnxruntime sessions built after this (``count``)."""
    global _threads
    _threads = max(1, threads)
    os.environ["OMP_NUM_THREADS"] = str(_threads)  # for libraries that start OpenMP later
    torch = sys.modules.get("torch")  # not imported yet: it reads OMP_NUM_THREADS when it is
    if torch is not None:
        torch.set_num_threads(_threads)
        try:
            torch.set_num_interop_threads(1)  # ops are not run in parallel by torch itself
        except RuntimeError:  # already set, or inter-op work already started: keep it
            pass


def count() -> int:
    """The threads a model call may use (for onnxruntime's session options)."""
    return _threads
