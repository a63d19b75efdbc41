"""Which GPU class this machine is, read with nvidia-ml-py (NVML).

The class names the task queue the worker polls (``<prefix>-gpu-<class>``) and picks
its batch sizes from ``core.contracts.gpu_profiles``. A machine without NVML or without a GPU is
class ``cpu``. ``nvml`` is a parameter so tests can hand the real detection code the
answers of a T4, an A100 or a broken driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from core.contracts.gpu_profiles import PROFILES


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_gib: float
    compute_capability: tuple[int, int]


def detect_gpus(nvml: ModuleType | None = None) -> list[GpuInfo]:
    """Every visible GPU; [] when NVML is missing or fails (a CPU machine)."""
    try:
        if nvml is None:
            import pynvml as nvml
        nvml.nvmlInit()
    except Exception:
        return []
    try:
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30
            try:
                capability = tuple(nvml.nvmlDeviceGetCudaComputeCapability(handle))
            except Exception:
                capability = (0, 0)
            found.append(GpuInfo(index, name, round(memory, 1), capability))
        return found
    except Exception:
        return []
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


# Checked in order: "a100" before "a10" (which it contains), "l40" (48 GB) before "l4".
_NAME_MARKERS = [("h100", "h100"), ("a100", "a100"), ("a10", "a10"), ("l40", ""), ("l4", "l4"), ("t4", "t4")]


def classify(gpu: GpuInfo) -> str:
    """A GPU's class from its name, else from its memory (largest class it can hold)."""
    name = gpu.name.lower()
    for marker, cls in _NAME_MARKERS:
        if marker in name:
            if cls == "a100":  # comes in 40 and 80 GB
                return "a100-80" if gpu.memory_gib > 60 else "a100-40"
            if cls:
                return cls
            break  # known name without a class of its own: go by memory
    fitting = [p for p in PROFILES.values() if p.gpu_class != "cpu" and p.min_memory_gib <= gpu.memory_gib]
    if not fitting:
        return "cpu"
    return max(fitting, key=lambda p: p.min_memory_gib).gpu_class


def worker_class(configured: str | None, gpus: list[GpuInfo]) -> str:
    """The class a worker serves: ``PIPELINE_WORKER_GPU_CLASS`` where set, else its machine's."""
    return configured or machine_class(gpus)


def machine_class(gpus: list[GpuInfo]) -> str:
    """Class of the smallest GPU on the machine: any activity may land on any of them."""
    if not gpus:
        return "cpu"
    return classify(min(gpus, key=lambda g: g.memory_gib))
