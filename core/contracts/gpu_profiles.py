"""GPU classes and what each can hold: the one table batch sizes and routing come from.

Pure data, so the workflow (deterministic code) can use the escalation ladder and the
duration limits, and the worker can size its batches. Batch sizes scale with memory
from the T4's to the 80 GB class's.
``max_audio_h`` is the longest recording a class takes: longer audio goes up the
ladder before it can run out of memory.

Units: ``segmentation_batch`` is 10 s windows per pass of the diarization stage (the
segmentation model, and CAM++ over 10 s blocks); ``embedding_batch`` is 10 s blocks
per CAM++ pass of the embedding stage.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict


class GpuProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    gpu_class: str
    min_memory_gib: float
    embedding_batch: int
    segmentation_batch: int
    gpu_slots: int  # activities run at once on this GPU
    max_audio_h: float


# class, min memory GiB, embedding batch, segmentation batch, GPU slots, max audio h
_TABLE: list[tuple[str, float, int, int, int, float]] = [
    ("cpu", 0, 32, 2, 2, 6),
    ("t4", 15, 128, 32, 1, 4),
    ("l4", 22, 192, 48, 1, 6),
    ("a10", 22, 192, 48, 1, 6),
    ("a100-40", 39, 377, 96, 2, 10),
    ("a100-80", 79, 754, 192, 2, 24),
    ("h100", 79, 754, 192, 2, 24),
]
PROFILES: dict[str, GpuProfile] = {
    name: GpuProfile(
        gpu_class=name,
        min_memory_gib=memory,
        embedding_batch=embedding,
        segmentation_batch=segmentation,
        gpu_slots=slots,
        max_audio_h=hours,
    )
    for name, memory, embedding, segmentation, slots, hours in _TABLE
}

# Where a video goes when it does not fit: the next class with more memory.
ESCALATION: dict[str, str | None] = {
    "cpu": None,
    "t4": "a10",
    "l4": "a100-40",
    "a10": "a100-40",
    "a100-40": "a100-80",
    "a100-80": None,
    "h100": None,
}


# Host memory, MiB, measured with ``benchmarks.podcast`` on the CPU class: the worker
# once started, and the most one busy model slot added to it ((peak - started) / 2 slots)
# on podcasts of 60, 180 and 359 minutes. The stages stream their audio; what still
# grows with the length is the diarization's global step and the turns.
WORKER_READY_MIB = 1018
SLOT_PEAK_MIB = 620
MEMORY_HEADROOM = 1.25  # allocator slack, and what one benchmark recording did not meet


def host_memory_mib(slots: int) -> int:
    """The memory a worker with ``slots`` model slots needs: its pod's memory request."""
    return math.ceil((WORKER_READY_MIB + slots * SLOT_PEAK_MIB) * MEMORY_HEADROOM)


def slots_that_fit(limit_mib: float, wanted: int) -> int:
    """At most ``wanted`` model slots, as many as ``limit_mib`` holds; at least one (a
    worker with none serves nothing: its stages' memory guard fails them typed instead)."""
    if limit_mib <= 0:  # unknown: trust the profile
        return wanted
    fit = math.floor((limit_mib / MEMORY_HEADROOM - WORKER_READY_MIB) / SLOT_PEAK_MIB)
    return max(1, min(wanted, fit))


def profile_for(gpu_class: str) -> GpuProfile:
    """The profile of a class; an unknown class gets the nearest one by memory (CPU if none)."""
    return PROFILES.get(gpu_class, PROFILES["cpu"])


def worker_profile(
    gpu_class: str, embedding_batch: int | None = None, segmentation_batch: int | None = None
) -> GpuProfile:
    """The batch sizes a worker of ``gpu_class`` runs with: the class's profile, with the
    settings' overrides (``PIPELINE_EMBEDDING_BATCH_SIZE``, ``PIPELINE_SEGMENTATION_BATCH_SIZE``)
    where they are set."""
    overrides = {"embedding_batch": embedding_batch, "segmentation_batch": segmentation_batch}
    return profile_for(gpu_class).model_copy(update={k: v for k, v in overrides.items() if v})


def next_class(gpu_class: str) -> str | None:
    return ESCALATION.get(gpu_class)


def classes_above(gpu_class: str) -> list[str]:
    """The ladder above ``gpu_class``, smallest first."""
    above, current = [], next_class(gpu_class)
    while current is not None:
        above.append(current)
        current = next_class(current)
    return above


def class_for_duration(gpu_class: str, duration_s: float) -> str:
    """Walk up the ladder until a class can hold ``duration_s`` of audio (or the top)."""
    current = gpu_class
    while duration_s > profile_for(current).max_audio_h * 3600:
        bigger = next_class(current)
        if bigger is None:
            return current
        current = bigger
    return current
