"""Which GPU class this machine is, read with nvidia-ml-py (NVML).

The class names the task queue the worker polls (``<prefix>-gpu-<class>``). A machine
without NVML or without a GPU is class ``cpu``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    name: str
    memory_gib: float


def detect_gpus() -> list[GpuInfo]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: a CPU machine
        return []
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30
            found.append(GpuInfo(name=name, memory_gib=round(memory, 1)))
        return found
    finally:
        pynvml.nvmlShutdown()


def gpu_class(gpus: list[GpuInfo]) -> str:
    """Class of the smallest GPU on the machine (a job must fit on any of them)."""
    if not gpus:
        return "cpu"
    gpu = min(gpus, key=lambda g: g.memory_gib)
    name = gpu.name.lower()
    if "a100" in name:  # before "a10", which it contains
        return "a100-80" if gpu.memory_gib > 60 else "a100-40"
    for marker in ("t4", "a10", "l4", "h100", "h200"):
        if marker in name:
            return marker
    return f"gpu-{int(round(gpu.memory_gib))}g"
