"""Start a batch and read its state back from Temporal.

``start_batch`` validates the CSV (every bad row reported with its line), uploads the
valid rows to storage and starts one BatchWorkflow, ``batch-{batch_id}``, which starts
the videos a window at a time (workflows/batch.py). Each video is workflow
``video-{video_id}`` with "reject if running or completed, allow again if failed", so
re-running a batch starts nothing already done. Everything shown to the operator comes
from Temporal: the batch's ``progress`` query and the videos' search attributes.

The running batch reads its input by byte offset, so the input is written once per
batch id (If-None-Match): a second start with the same CSV reuses it, one with another
CSV is refused (BatchInputConflict), even when both starts run at the same moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core import batch_input, queues
from core import search_attributes as sa
from core.batches import DEFAULT_WINDOW, MAX_WINDOW, BatchJob, BatchProgress
from core.gpu_profiles import PROFILES
from core.ids import VIDEO_WORKFLOW, batch_workflow_id, video_id_of, video_workflow_id
from core.layout import batch_input_key
from core.models import VideoSpec, VideoStatus
from core.settings import Settings
from core.storage import ObjectStore
from starter.csv_input import RowError, read_videos

# what --gpu-class takes: a class some worker can serve (core.gpu_profiles), or auto
GPU_CLASSES = ("auto", *PROFILES)


class UnknownGpuClass(ValueError):
    """A GPU class no worker serves: its videos would wait forever for a model stage."""

    def __init__(self, gpu_class: str, source: str = "--gpu-class"):
        where = f" ({source})" if source else ""
        super().__init__(f"unknown GPU class {gpu_class!r}{where}; known classes: {', '.join(GPU_CLASSES)}")


class BatchInputConflict(RuntimeError):
    """The batch id's input already holds a different CSV: a concurrent or earlier start
    wrote it, and a running batch reads it by byte offset, so it is never replaced."""


def check_gpu_class(gpu_class: str, settings: Settings) -> str:
    """The class the batch's videos go to: ``gpu_class``, or PIPELINE_GPU_CLASS for auto."""
    if gpu_class not in GPU_CLASSES:
        raise UnknownGpuClass(gpu_class)
    resolved = settings.gpu_class if gpu_class == "auto" else gpu_class
    if resolved not in PROFILES:
        raise UnknownGpuClass(resolved, "PIPELINE_GPU_CLASS, used for --gpu-class auto")
    return resolved


def check_window(window: int) -> int:
    """A window the batch's carried state can hold (core.batches.batch_payload_bound)."""
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be 1 to {MAX_WINDOW} videos in flight (got {window})")
    return window


def _write_input_once(store: ObjectStore, key: str, batch_id: str, data: bytes) -> None:
    """Create the batch's input, or find the same bytes there (a repeated start):
    If-None-Match makes two concurrent starts agree on one file."""
    if store.create_bytes(key, data, "text/csv"):
        return
    existing = store.get_bytes(key)
    if existing != data:
        theirs, ours = (hashlib.sha256(d).hexdigest()[:12] for d in (existing, data))
        raise BatchInputConflict(
            f"batch {batch_id}: {key} already holds a different CSV (sha256 {theirs}, this one {ours}); "
            "a batch's input is written once, by its first start: start this CSV under a new --batch-id"
        )


@dataclass
class StartReport:
    valid: int = 0
    invalid: list[RowError] = field(default_factory=list)
    workflow_id: str = ""
    submitted: bool = False
    reason: str = ""


async def batch_is_running(client: Client, workflow_id_: str) -> bool:
    try:
        description = await client.get_workflow_handle(workflow_id_).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return description.status == WorkflowExecutionStatus.RUNNING


async def start_batch(
    client: Client,
    settings: Settings,
    csv_path: Path,
    batch_id: str,
    gpu_class: str = "auto",
    *,
    window: int = DEFAULT_WINDOW,
    limit: int | None = None,
    dry_run: bool = False,
    input_name: str = "videos.csv",
    workflow_id_: str | None = None,
    max_events_per_run: int | None = None,
    reconcile_s: float | None = None,
) -> StartReport:
    """Validate, upload the valid rows, start the BatchWorkflow. Idempotent: a batch that
    is running is left alone; one that finished runs again, skipping what is done.

    The input is written once per batch id (conditional PUT): a start with another CSV
    for the same id raises BatchInputConflict, and an unknown class UnknownGpuClass,
    both before anything is written."""
    gpu_class_ = check_gpu_class(gpu_class, settings)
    check_window(window)
    report = StartReport(workflow_id=workflow_id_ or batch_workflow_id(batch_id))
    if await batch_is_running(client, report.workflow_id):
        report.reason = "already running"
        return report
    store = ObjectStore(settings)
    key = batch_input_key(store.prefix, batch_id, input_name)

    def valid_specs() -> Iterator[VideoSpec]:
        for item in read_videos(csv_path, batch_id):
            if isinstance(item, RowError):
                report.invalid.append(item)
            elif limit is None or report.valid < limit:
                report.valid += 1
                yield item.spec

    with tempfile.TemporaryDirectory() as tmp:
        normalised = Path(tmp) / "videos.csv"
        batch_input.write_rows(valid_specs(), normalised)
        data = normalised.read_bytes()
    await asyncio.to_thread(store.ensure_bucket)
    await asyncio.to_thread(store.check_conditional_writes)  # StoreUnsafe: no batch on such a store
    await asyncio.to_thread(_write_input_once, store, key, batch_id, data)

    job = BatchJob(
        batch_id=batch_id,
        input_key=key,
        total=report.valid,
        window=window,
        gpu_class=gpu_class_,
        queue_prefix=settings.task_queue_prefix,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        breaker=settings.source_breaker,
        dry_run=dry_run,
        **({"max_events_per_run": max_events_per_run} if max_events_per_run else {}),
        **({"reconcile_s": reconcile_s} if reconcile_s else {}),
    )
    # imports the pipeline's activities: only the commands that start a workflow pay for it
    from workflows.batch import BatchWorkflow

    try:
        await client.start_workflow(
            BatchWorkflow.run,
            job,
            id=report.workflow_id,
            task_queue=queues.workflow_queue(settings.task_queue_prefix),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.BATCH_ID, batch_id),
                    SearchAttributePair(sa.PIPELINE_STAGE, sa.Outcome.RUNNING),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:  # a concurrent start of the same input won
        report.reason = "already running"
        return report
    report.submitted = True
    return report


async def batch_progress(client: Client, batch_id: str, workflow_id_: str | None = None) -> BatchProgress:
    handle = client.get_workflow_handle(workflow_id_ or batch_workflow_id(batch_id))
    return await handle.query("progress", result_type=BatchProgress)


@dataclass(frozen=True)
class VideoRow:
    """One video of a batch as visibility shows it."""

    video_id: str
    status: str  # Running, Completed, Failed, ...
    stage: str
    num_speakers: int | None
    usable_pct: float | None
    audio_s: float | None
    error_type: str | None


def _query(batch_id: str) -> str:
    return f'{sa.BATCH_ID.name} = "{batch_id}" AND WorkflowType = "{VIDEO_WORKFLOW}"'


async def _latest_runs(client: Client, query: str) -> dict[str, WorkflowExecution]:
    """The most recently started run of each workflow the query matches (a video run
    again after failing has several)."""
    latest: dict[str, WorkflowExecution] = {}
    async for wf in client.list_workflows(query):
        if wf.id not in latest or latest[wf.id].start_time < wf.start_time:
            latest[wf.id] = wf
    return latest


async def list_videos(client: Client, batch_id: str) -> list[VideoRow]:
    """The latest run of each video of the batch."""
    rows = []
    for wf in (await _latest_runs(client, _query(batch_id))).values():
        attrs = wf.typed_search_attributes
        rows.append(
            VideoRow(
                video_id=attrs.get(sa.VIDEO_ID) or video_id_of(wf.id),
                status=_status_name(wf.status),
                stage=attrs.get(sa.PIPELINE_STAGE) or "",
                num_speakers=attrs.get(sa.NUM_SPEAKERS),
                usable_pct=attrs.get(sa.USABLE_PCT),
                audio_s=attrs.get(sa.AUDIO_SECONDS),
                error_type=attrs.get(sa.ERROR_TYPE),
            )
        )
    return sorted(rows, key=lambda r: r.video_id)


async def with_live_stages(client: Client, rows: list[VideoRow], concurrency: int = 32) -> list[VideoRow]:
    """Running videos with the stage their ``status`` query reports (their search
    attributes only say ``running``); a video no worker answers for keeps that."""
    gate = asyncio.Semaphore(concurrency)

    async def live(row: VideoRow) -> VideoRow:
        if row.status != "Running":
            return row
        async with gate:
            try:
                status = await client.get_workflow_handle(video_workflow_id(row.video_id)).query(
                    "status", result_type=VideoStatus, rpc_timeout=timedelta(seconds=5)
                )
            except (RPCError, WorkflowQueryFailedError):
                return row
        return replace(row, stage=status.stage)

    return list(await asyncio.gather(*(live(row) for row in rows)))


@dataclass(frozen=True)
class BatchCounts:
    """Videos by the status of their latest run. ``rerun`` counts earlier runs that
    ended unsuccessfully and were run again (retry-failed): not counted as videos."""

    by_status: dict[str, int]
    failed_by_error: dict[str, int]
    rerun: int = 0

    @property
    def open(self) -> int:
        return self.by_status.get("Running", 0)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


# A video's id can run again only after a run that ended in one of these (the id reuse
# policy refuses a second run of a running or completed id).
_RERUNNABLE_ENDS = ("Failed", "Terminated", "Canceled", "TimedOut")


async def batch_counts(client: Client, batch_id: str) -> BatchCounts:
    """Counts runs by status with one server-side GROUP BY, then corrects for videos
    run again: only the unsuccessful runs (few, and the only ones that can have a
    successor) are listed and matched against each video's latest run."""
    grouped = await client.count_workflows(f"{_query(batch_id)} GROUP BY ExecutionStatus")
    by_status: Counter[str] = Counter()
    for group in grouped.groups:
        by_status[str(group.group_values[0])] += group.count
    ended = [status for status in _RERUNNABLE_ENDS if by_status.get(status)]
    if not ended:
        return BatchCounts(dict(by_status), {})
    runs: dict[str, list] = {}
    statuses = " OR ".join(f'ExecutionStatus = "{status}"' for status in ended)
    async for wf in client.list_workflows(f"{_query(batch_id)} AND ({statuses})"):
        runs.setdefault(wf.id, []).append(wf)
    latest: dict[str, str] = {}
    ids = list(runs)
    for i in range(0, len(ids), 200):  # the latest run of each of these videos, 200 per query
        in_ids = ", ".join(f'"{wid}"' for wid in ids[i : i + 200])
        found = await _latest_runs(client, f"{_query(batch_id)} AND WorkflowId IN ({in_ids})")
        latest.update({wid: wf.run_id for wid, wf in found.items()})
    failed: Counter[str] = Counter()
    rerun = 0
    for workflow_id, video_runs in runs.items():
        for wf in video_runs:
            if wf.run_id != latest.get(workflow_id, wf.run_id):
                by_status[_status_name(wf.status)] -= 1
                rerun += 1
            elif wf.status == WorkflowExecutionStatus.FAILED:
                failed[wf.typed_search_attributes.get(sa.ERROR_TYPE) or "unknown"] += 1
    return BatchCounts({k: n for k, n in by_status.items() if n}, dict(failed), rerun)


async def wait_for_batch(
    client: Client,
    batch_id: str,
    poll_s: float = 1.0,
    timeout_s: float = 3600,
    workflow_id_: str | None = None,
) -> BatchCounts:
    """Wait until the BatchWorkflow is done and no video of the batch is running,
    polling (never awaiting thousands of results)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while await batch_is_running(client, workflow_id_ or batch_workflow_id(batch_id)):
        if loop.time() > deadline:
            raise TimeoutError(f"batch {batch_id}: still running after {timeout_s:.0f} s")
        await asyncio.sleep(poll_s)
    while True:
        counts = await batch_counts(client, batch_id)
        if counts.open == 0:
            return counts
        if loop.time() > deadline:
            raise TimeoutError(
                f"batch {batch_id}: {counts.open} videos still running after {timeout_s:.0f} s"
            )
        await asyncio.sleep(poll_s)


def _status_name(status: WorkflowExecutionStatus | None) -> str:
    return status.name.replace("_", " ").title().replace(" ", "") if status else "Unknown"


def format_video_line(row: VideoRow, settings: Settings) -> str:
    location = f"s3://{settings.s3_bucket}/{_prefix(settings)}{row.video_id}/"
    if row.status == "Completed":
        return (
            f"{row.video_id:<28} completed  speakers={row.num_speakers}  "
            f"usable={row.usable_pct:5.1f}%  duration={row.audio_s:7.1f}s  {location}"
        )
    detail = f"error={row.error_type}" if row.error_type else f"stage={row.stage}"
    return f"{row.video_id:<28} {row.status.lower():<10} {detail}"


def _prefix(settings: Settings) -> str:
    prefix = settings.s3_prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def summarize(rows: Iterable[VideoRow]) -> tuple[int, int]:
    rows = list(rows)
    return (
        sum(r.status == "Completed" for r in rows),
        sum(r.status in {"Failed", "TimedOut", "Terminated", "Canceled"} for r in rows),
    )
