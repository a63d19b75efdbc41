"""Prometheus metrics of a worker process, on one endpoint: ``PIPELINE_METRICS_ADDRESS``.

The Temporal SDK serves it (its runtime's Prometheus exporter), so its own metrics
(task slots, schedule-to-start latency, activity failures, poll errors) and the
pipeline's sit side by side and need no second HTTP server. Pipeline metrics:

- ``pipeline_audio_seconds_total{stage}``: audio a stage has processed (reused
  results not counted); its rate per GPU class is the fleet's throughput.
- ``pipeline_stage_realtime_factor{stage}``: wall seconds per audio second of a stage,
  storage I/O included (histogram).
- ``pipeline_stage_failures_total{stage, error_type}``: failed attempts by type.
- ``pipeline_cuda_oom_halvings_total{stage}``: batches halved after a CUDA OOM.
- ``pipeline_gpu_utilization_percent{gpu}`` and ``pipeline_gpu_memory_used_bytes{gpu}``:
  NVML readings every ``GPU_SAMPLE_S``.
- ``pipeline_batch_breaker_trips_total{batch_id}``: times a batch paused itself because
  the source pushed back (served by the worker that runs the batch's workflow).

Activity metrics carry the SDK's labels (namespace, task_queue, activity_type) plus
``gpu_class``. Without an address the SDK's meter is a no-op and nothing is served.
deploy/prometheus/alerts.yml alerts on them.
"""

from __future__ import annotations

import asyncio
from types import ModuleType

import structlog
from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.settings import Settings

log = structlog.get_logger("metrics")

AUDIO_SECONDS = "pipeline_audio_seconds_total"
REALTIME_FACTOR = "pipeline_stage_realtime_factor"
STAGE_FAILURES = "pipeline_stage_failures_total"
OOM_HALVINGS = "pipeline_cuda_oom_halvings_total"
GPU_UTILIZATION = "pipeline_gpu_utilization_percent"
GPU_MEMORY_USED = "pipeline_gpu_memory_used_bytes"
BREAKER_TRIPS = "pipeline_batch_breaker_trips_total"  # counted by the BatchWorkflow (workflow meter)
PIPELINE_METRICS = (
    AUDIO_SECONDS,
    REALTIME_FACTOR,
    STAGE_FAILURES,
    OOM_HALVINGS,
    GPU_UTILIZATION,
    GPU_MEMORY_USED,
    BREAKER_TRIPS,
)

GPU_SAMPLE_S = 15.0
REALTIME_FACTOR_BUCKETS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]


def telemetry_runtime(settings: Settings) -> Runtime | None:
    """The SDK runtime that serves /metrics at ``settings.metrics_address``; None: off.

    An address that cannot be served (taken, malformed) is logged and the worker runs
    without metrics: a GPU that works unobserved beats one that does not work (the
    scrape target shows as down)."""
    if not settings.metrics_address:
        return None
    prometheus = PrometheusConfig(
        bind_address=settings.metrics_address,
        histogram_bucket_overrides={REALTIME_FACTOR: REALTIME_FACTOR_BUCKETS},
    )
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
    except ValueError as error:
        log.error("metrics.unavailable", address=settings.metrics_address, error=str(error))
        return None


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


async def sample_gpus(
    meter: MetricMeter, nvml: ModuleType | None = None, every_s: float = GPU_SAMPLE_S
) -> None:
    """Publish each GPU's utilisation and memory in use until cancelled; returns at once
    on a machine without NVML. ``nvml`` is a parameter so tests can inject a device."""
    try:
        if nvml is None:
            import pynvml

            nvml = pynvml
        nvml.nvmlInit()
    except Exception:
        return
    utilization = meter.create_gauge_float(GPU_UTILIZATION, "GPU busy time, NVML", "%")
    memory_used = meter.create_gauge(GPU_MEMORY_USED, "GPU memory in use, NVML", "By")
    try:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        while True:
            for index, handle in enumerate(handles):
                labels = {"gpu": str(index)}
                try:
                    utilization.set(float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu), labels)
                    memory_used.set(int(nvml.nvmlDeviceGetMemoryInfo(handle).used), labels)
                except Exception:  # a GPU fallen off the bus: the stages will say so
                    continue
            await asyncio.sleep(every_s)
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
