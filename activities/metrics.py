"""What an activity attempt adds to the worker's metrics (names: ``core/service/metrics.py``).

Recorded through the SDK's activity meter, so each carries the SDK's labels
(namespace, task_queue, activity_type) beside ``stage`` and ``gpu_class``.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.common import MetricMeter

from core.service.metrics import AUDIO_SECONDS, OOM_HALVINGS, REALTIME_FACTOR, STAGE_FAILURES


def _stage_meter(stage: str, gpu_class: str) -> MetricMeter:
    return activity.metric_meter().with_additional_attributes({"stage": stage, "gpu_class": gpu_class})


def record_stage_done(stage: str, gpu_class: str, audio_s: float, wall_s: float) -> None:
    meter = _stage_meter(stage, gpu_class)
    meter.create_counter(AUDIO_SECONDS, "audio processed", "s").add(round(audio_s))
    if audio_s > 0:
        meter.create_histogram_float(REALTIME_FACTOR, "stage wall seconds per audio second").record(
            wall_s / audio_s
        )


def record_stage_failed(stage: str, gpu_class: str, error_type: str) -> None:
    _stage_meter(stage, gpu_class).create_counter(STAGE_FAILURES, "failed stage attempts").add(
        1, {"error_type": error_type}
    )


def record_oom_halving(stage: str, gpu_class: str) -> None:
    _stage_meter(stage, gpu_class).create_counter(
        OOM_HALVINGS, "batch sizes halved after CUDA out of memory"
    ).add(1)
