"""Start a batch: validate its CSV, write its input once, start its BatchWorkflow.

``start_batch`` validates the CSV (every bad row reported with its line), uploads the
valid rows to storage and starts one BatchWorkflow, ``batch-{batch_id}``, which starts
the videos a window at a time (workflows/batch.py). Each video is workflow
``video-{video_id}`` with "reject if running or completed, allow again if failed", so
re-running a batch starts nothing already done. Reading a batch back (progress,
videos, counts) is starter/status.py.

The running batch reads its input by byte offset, so the input is written once per
batch id (If-None-Match): a second start with the same CSV reuses it, one with another
CSV is refused (BatchInputConflict), even when both starts run at the same moment.

A dry run pages through its rows in a BatchWorkflow of its own
(``core.contracts.ids.dry_run_workflow_id``) from an input named by its content, and starts no
video: it leaves nothing a real start would take for its batch. A second dry run
replaces a first still paging. It also says what a real start would meet.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.contracts import queues
from core.contracts import search_attributes as sa
from core.contracts.batch import DEFAULT_WINDOW, MAX_WINDOW, BatchJob
from core.contracts.gpu_profiles import PROFILES
from core.contracts.ids import batch_workflow_id, dry_run_workflow_id
from core.contracts.video import VideoSpec
from core.service.settings import Settings
from core.store import batch_input
from core.store.layout import batch_input_key, dry_run_input_name
from core.store.objects import ObjectStore
from starter.csv_input import RowError, read_videos
from starter.status import batch_is_running

# what --gpu-class takes: a class some worker can serve (core.contracts.gpu_profiles), or auto
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
    """A window the batch's carried state can hold (core.contracts.batch.batch_payload_bound)."""
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be 1 to {MAX_WINDOW} videos in flight (got {window})")
    return window


def _write_input_once(store: ObjectStore, key: str, batch_id: str, path: Path, sha256: str) -> None:
    """Create the batch's input (streamed from ``path``), or find the same bytes there (a
    repeated start): If-None-Match makes two concurrent starts agree on one file."""
    if store.create_file(key, path, "text/csv"):
        return
    conflict = _input_conflict(store, key, batch_id, sha256)
    if conflict:
        raise BatchInputConflict(conflict)


def _input_conflict(store: ObjectStore, key: str, batch_id: str, sha256: str) -> str:
    """Why a start of the input of ``sha256`` would be refused for this batch id ("" when
    it would not)."""
    try:
        existing, _etag = store.sha256(key)
    except KeyError:
        return ""
    if existing == sha256:
        return ""
    return (
        f"batch {batch_id}: {key} already holds a different CSV (sha256 {existing[:12]}, this one "
        f"{sha256[:12]}); a batch's input is written once, by its first start: start this CSV under a "
        f"new --batch-id (videos done under {batch_id} are never run again), or start the first CSV again"
    )


@dataclass
class StartReport:
    valid: int = 0
    invalid: list[RowError] = field(default_factory=list)
    workflow_id: str = ""
    submitted: bool = False
    reason: str = ""
    notes: list[str] = field(default_factory=list)  # a dry run: what a real start would meet


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
    workflow_id: str | None = None,
    max_events_per_run: int | None = None,
    reconcile_s: float | None = None,
) -> StartReport:
    """Validate, upload the valid rows, start the BatchWorkflow. Idempotent: a batch that
    is running is left alone; one that finished runs again, skipping what is done.

    The input is written once per batch id (conditional PUT): a start with another CSV
    for the same id raises BatchInputConflict, and an unknown class UnknownGpuClass,
    both before anything is written."""
    resolved_class = check_gpu_class(gpu_class, settings)
    check_window(window)
    real_id = workflow_id or batch_workflow_id(batch_id)
    report = StartReport(workflow_id=dry_run_workflow_id(batch_id) if dry_run else real_id)
    running = await batch_is_running(client, real_id)
    if running and not dry_run:
        report.reason = "already running"
        return report
    store = ObjectStore(settings)
    real_key = batch_input_key(store.prefix, batch_id, input_name)
    with tempfile.TemporaryDirectory() as tmp:  # the input goes to storage from disk, not memory
        normalised = Path(tmp) / "videos.csv"
        sha256 = _valid_rows(csv_path, batch_id, limit, report, normalised)
        key = batch_input_key(store.prefix, batch_id, dry_run_input_name(sha256)) if dry_run else real_key
        await asyncio.to_thread(store.ensure_bucket)
        await asyncio.to_thread(store.check_conditional_writes)  # StoreUnsafe: no batch on such a store
        if dry_run:
            conflict = await asyncio.to_thread(_input_conflict, store, real_key, batch_id, sha256)
            report.notes += [f"a real start would be refused: {conflict}"] if conflict else []
            report.notes += (
                [f"batch {batch_id} is running: a real start now would start nothing"] if running else []
            )
        await asyncio.to_thread(_write_input_once, store, key, batch_id, normalised, sha256)

    job = BatchJob(
        batch_id=batch_id,
        input_key=key,
        total=report.valid,
        window=window,
        gpu_class=resolved_class,
        queue_prefix=settings.task_queue_prefix,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        breaker=settings.source_breaker,
        escalation=settings.escalation,
        dry_run=dry_run,
        **({"max_events_per_run": max_events_per_run} if max_events_per_run else {}),
        **({"reconcile_s": reconcile_s} if reconcile_s else {}),
    )
    await _start_workflow(client, job, report)
    return report


def _valid_rows(csv_path: Path, batch_id: str, limit: int | None, report: StartReport, into: Path) -> str:
    """Write the normalised input (core/store/batch_input.py) of the CSV's valid rows, at most
    ``limit``, to ``into``; the invalid ones and the count go into ``report``. Returns
    the input's sha256."""

    def valid_specs() -> Iterator[VideoSpec]:
        for item in read_videos(csv_path, batch_id):
            if isinstance(item, RowError):
                report.invalid.append(item)
            elif limit is None or report.valid < limit:
                report.valid += 1
                yield item.spec

    batch_input.write_rows(valid_specs(), into)
    digest = hashlib.sha256()
    with into.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


async def _start_workflow(client: Client, job: BatchJob, report: StartReport) -> None:
    # imports the pipeline's activities: only the commands that start a workflow pay for it
    from workflows.batch import BatchWorkflow

    try:
        await client.start_workflow(
            BatchWorkflow.run,
            job,
            id=report.workflow_id,
            task_queue=queues.workflow_queue(job.queue_prefix),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            # a second dry run replaces one still paging; a real batch is never replaced
            id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING
            if job.dry_run
            else WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.BATCH_ID, job.batch_id),
                    SearchAttributePair(sa.PIPELINE_STAGE, sa.Outcome.RUNNING),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:  # a concurrent start of the same input won
        report.reason = "already running"
        return
    report.submitted = True
