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
deploy/prometheus/alerts.yml alerts on them and deploy/grafana draws them. This module
only names them: the SDK runtime that serves them is built in ``workers/telemetry.py``,
and activities record through ``activities/metrics.py``.
"""

from __future__ import annotations

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

# The Temporal SDK's own metrics the dashboard (deploy/grafana) reads: a queue's backlog
# shows as activities waiting to start and as workers without a free slot.
SDK_SCHEDULE_TO_START = "temporal_activity_schedule_to_start_latency"
SDK_SLOTS_AVAILABLE = "temporal_worker_task_slots_available"
SDK_METRICS_USED = (SDK_SCHEDULE_TO_START, SDK_SLOTS_AVAILABLE)

GPU_SAMPLE_S = 15.0
REALTIME_FACTOR_BUCKETS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
