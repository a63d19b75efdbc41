"""The worker's Prometheus endpoint: the Temporal SDK runtime that serves it, and the
GPU readings published on it (metric names: ``core/service/metrics.py``)."""

from __future__ import annotations

import asyncio
from types import ModuleType

import structlog
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.service.metrics import (
    GPU_MEMORY_USED,
    GPU_SAMPLE_S,
    GPU_UTILIZATION,
    REALTIME_FACTOR,
    REALTIME_FACTOR_BUCKETS,
)
from core.service.settings import Settings

log = structlog.get_logger("metrics")


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
