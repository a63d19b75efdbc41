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

from pydantic import BaseModel, ConfigDict


class GpuProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    gpu_class: str
    min_memory_gib: float
    embedding_batch: int
    segmentation_batch: int
    gpu_slots: int  # activities run at once on this GPU
    max_audio_h: float


PROFILES: dict[str, GpuProfile] = {
    p.gpu_class: p
    for p in [
        GpuProfile(
            gpu_class="cpu",
            min_memory_gib=0,
            embedding_batch=32,
            segmentation_batch=8,
            gpu_slots=2,
            max_audio_h=6,
        ),
        GpuProfile(
            gpu_class="t4",
            min_memory_gib=15,
            embedding_batch=128,
            segmentation_batch=32,
            gpu_slots=1,
            max_audio_h=4,
        ),
        GpuProfile(
            gpu_class="l4",
            min_memory_gib=22,
            embedding_batch=192,
            segmentation_batch=48,
            gpu_slots=1,
            max_audio_h=6,
        ),
        GpuProfile(
            gpu_class="a10",
            min_memory_gib=22,
            embedding_batch=192,
            segmentation_batch=48,
            gpu_slots=1,
            max_audio_h=6,
        ),
        GpuProfile(
            gpu_class="a100-40",
            min_memory_gib=39,
            embedding_batch=377,
            segmentation_batch=96,
            gpu_slots=2,
            max_audio_h=10,
        ),
        GpuProfile(
            gpu_class="a100-80",
            min_memory_gib=79,
            embedding_batch=754,
            segmentation_batch=192,
            gpu_slots=2,
            max_audio_h=24,
        ),
        GpuProfile(
            gpu_class="h100",
            min_memory_gib=79,
            embedding_batch=754,
            segmentation_batch=192,
            gpu_slots=2,
            max_audio_h=24,
        ),
    ]
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


def profile_for(gpu_class: str) -> GpuProfile:
    """The profile of a class; an unknown class gets the nearest one by memory (CPU if none)."""
    return PROFILES.get(gpu_class, PROFILES["cpu"])


def next_class(gpu_class: str) -> str | None:
    return ESCALATION.get(gpu_class)


def class_for_duration(gpu_class: str, duration_s: float) -> str:
    """Walk up the ladder until a class can hold ``duration_s`` of audio (or the top)."""
    current = gpu_class
    while duration_s > profile_for(current).max_audio_h * 3600:
        bigger = next_class(current)
        if bigger is None:
            return current
        current = bigger
    return current
