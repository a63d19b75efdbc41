"""Start a batch and read its state back from Temporal's visibility store.

Starting is idempotent by construction: each video is workflow ``video-{video_id}``
started with "reject if running, reject if completed, allow again if it failed", so a
second start of the same CSV starts nothing that is running or done, and restarts
only what failed. All state shown to the operator comes from Temporal (search
attributes), not from a side database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core import queues
from core.models import VideoJob, VideoSpec
from core.settings import Settings
from starter.csv_input import RowError, ValidRow, read_videos
from workflows import search_attributes as sa

START_CONCURRENCY = 32


def workflow_id(video_id: str) -> str:
    return f"video-{video_id}"


@dataclass
class StartReport:
    started: int = 0
    skipped: int = 0  # already running or completed
    invalid: list[RowError] = field(default_factory=list)


async def start_batch(
    client: Client, settings: Settings, csv_path: Path, batch_id: str, gpu_class: str = "auto"
) -> StartReport:
    resolved_class = settings.gpu_class if gpu_class == "auto" else gpu_class
    report = StartReport()
    pending: set[asyncio.Task] = set()

    async def start_one(spec: VideoSpec) -> None:
        job = VideoJob(
            spec=spec,
            queue_prefix=settings.task_queue_prefix,
            gpu_class=resolved_class,
            heartbeat_timeout_s=settings.heartbeat_timeout_s,
        )
        try:
            await client.start_workflow(
                "VideoWorkflow",
                job,
                id=workflow_id(spec.video_id),
                task_queue=queues.workflow_queue(settings.task_queue_prefix),
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.BATCH_ID, batch_id),
                        SearchAttributePair(sa.VIDEO_ID, spec.video_id),
                        SearchAttributePair(sa.GPU_CLASS, resolved_class),
                        SearchAttributePair(sa.PIPELINE_STAGE, "queued"),
                    ]
                ),
            )
            report.started += 1
        except WorkflowAlreadyStartedError:
            report.skipped += 1

    for item in read_videos(csv_path, batch_id, gpu_class):
        if isinstance(item, RowError):
            report.invalid.append(item)
            continue
        assert isinstance(item, ValidRow)
        if len(pending) >= START_CONCURRENCY:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        pending.add(asyncio.create_task(start_one(item.spec)))
    await asyncio.gather(*pending)
    return report


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
    return f'BatchId = "{batch_id}"'


async def list_videos(client: Client, batch_id: str) -> list[VideoRow]:
    rows = []
    async for wf in client.list_workflows(_query(batch_id)):
        attrs = wf.typed_search_attributes
        rows.append(
            VideoRow(
                video_id=attrs.get(sa.VIDEO_ID) or wf.id.removeprefix("video-"),
                status=_status_name(wf.status),
                stage=attrs.get(sa.PIPELINE_STAGE) or "",
                num_speakers=attrs.get(sa.NUM_SPEAKERS),
                usable_pct=attrs.get(sa.USABLE_PCT),
                audio_s=attrs.get(sa.AUDIO_SECONDS),
                error_type=attrs.get(sa.ERROR_TYPE),
            )
        )
    return sorted(rows, key=lambda r: r.video_id)


@dataclass(frozen=True)
class BatchCounts:
    by_status: dict[str, int]
    failed_by_error: dict[str, int]

    @property
    def open(self) -> int:
        return self.by_status.get("Running", 0)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


async def batch_counts(client: Client, batch_id: str) -> BatchCounts:
    """Counts by execution status (server-side GROUP BY) and failures by ErrorType."""
    grouped = await client.count_workflows(f"{_query(batch_id)} GROUP BY ExecutionStatus")
    by_status: Counter[str] = Counter()
    for group in grouped.groups:
        by_status[str(group.group_values[0])] += group.count
    failed: Counter[str] = Counter()
    if by_status.get("Failed"):
        async for wf in client.list_workflows(f'{_query(batch_id)} AND ExecutionStatus = "Failed"'):
            failed[wf.typed_search_attributes.get(sa.ERROR_TYPE) or "unknown"] += 1
    return BatchCounts(dict(by_status), dict(failed))


async def wait_for_batch(client: Client, batch_id: str, poll_s: float = 1.0, timeout_s: float = 3600) -> BatchCounts:
    """Poll until no workflow of the batch is running (never awaits thousands of results)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        counts = await batch_counts(client, batch_id)
        if counts.total and counts.open == 0:
            return counts
        if loop.time() > deadline:
            raise TimeoutError(f"batch {batch_id}: {counts.open} videos still running after {timeout_s:.0f} s")
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
