"""Read a batch back from Temporal: its progress, its videos, their counts by state.

Everything shown to the operator about a batch comes from Temporal, never from a
database of our own: the BatchWorkflow's ``progress`` query, and the visibility
store's search attributes of each ``video-{video_id}`` workflow (a video run again
after failing has several runs; the latest one counts). Kept apart from starting a
batch (starter/batch.py) because the CLI's watch commands, the report, the export
and the benchmarks only ever read.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import search_attributes as sa
from core.contracts.batch import BatchProgress
from core.contracts.ids import (
    PROGRESS_QUERY,
    STATUS_QUERY,
    VIDEO_WORKFLOW,
    batch_workflow_id,
    video_id_of,
    video_workflow_id,
)
from core.contracts.search_attributes import Outcome
from core.contracts.video import VideoStatus


async def batch_is_running(client: Client, workflow_id: str) -> bool:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return description.status == WorkflowExecutionStatus.RUNNING


async def batch_progress(client: Client, batch_id: str, workflow_id: str | None = None) -> BatchProgress:
    handle = client.get_workflow_handle(workflow_id or batch_workflow_id(batch_id))
    return await handle.query(PROGRESS_QUERY, result_type=BatchProgress)


@dataclass(frozen=True, slots=True)
class VideoRow:
    """One video of a batch as visibility shows it."""

    video_id: str
    status: str  # Running, Completed, Failed, ...
    stage: str
    num_speakers: int | None
    usable_pct: float | None
    audio_s: float | None
    error_type: str | None
    started: datetime | None = None
    closed: datetime | None = None  # None while it runs


def _query(batch_id: str) -> str:
    return f'{sa.BATCH_ID.name} = "{batch_id}" AND WorkflowType = "{VIDEO_WORKFLOW}"'


async def _latest_runs(client: Client, query: str) -> dict[str, WorkflowExecution]:
    """The most recently started run of each workflow the query matches (a few hundred)."""
    latest: dict[str, WorkflowExecution] = {}
    async for wf in client.list_workflows(query):
        if wf.id not in latest or latest[wf.id].start_time < wf.start_time:
            latest[wf.id] = wf
    return latest


async def list_videos(client: Client, batch_id: str) -> list[VideoRow]:
    """The latest run of each video of the batch (a video run again after failing has
    several), as compact rows: a batch of 340,000 is held as rows, not as executions."""
    latest: dict[str, tuple[datetime, VideoRow]] = {}
    async for wf in client.list_workflows(_query(batch_id)):
        if wf.id in latest and latest[wf.id][0] >= wf.start_time:
            continue
        attrs = wf.typed_search_attributes
        latest[wf.id] = (
            wf.start_time,
            VideoRow(
                video_id=attrs.get(sa.VIDEO_ID) or video_id_of(wf.id),
                status=_status_name(wf.status),
                stage=attrs.get(sa.PIPELINE_STAGE) or "",
                num_speakers=attrs.get(sa.NUM_SPEAKERS),
                usable_pct=attrs.get(sa.USABLE_PCT),
                audio_s=attrs.get(sa.AUDIO_SECONDS),
                error_type=attrs.get(sa.ERROR_TYPE),
                started=wf.start_time,
                closed=wf.close_time,
            ),
        )
    return sorted((row for _, row in latest.values()), key=lambda r: r.video_id)


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
                    STATUS_QUERY, result_type=VideoStatus, rpc_timeout=timedelta(seconds=5)
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
    duplicates: int = 0  # of the completed: committed as a Duplicate (PipelineStage "duplicate")

    @property
    def open(self) -> int:
        return self.by_status.get("Running", 0)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


# How a video's run can end without its outputs: a failure to report, and the only ends
# after which its id can run again (the id reuse policy refuses a running or completed id).
ENDED_BADLY = ("Failed", "Terminated", "Canceled", "TimedOut")


async def batch_counts(client: Client, batch_id: str) -> BatchCounts:
    """Counts runs by status with one server-side GROUP BY, then corrects for videos
    run again: only the unsuccessful runs (few, and the only ones that can have a
    successor) are listed and matched against each video's latest run."""
    grouped = await client.count_workflows(f"{_query(batch_id)} GROUP BY ExecutionStatus")
    by_status: Counter[str] = Counter()
    for group in grouped.groups:
        by_status[str(group.group_values[0])] += group.count
    duplicates = 0
    if by_status.get("Completed"):
        query = f'{_query(batch_id)} AND {sa.PIPELINE_STAGE.name} = "{Outcome.DUPLICATE}"'
        duplicates = (await client.count_workflows(query)).count
    ended = [status for status in ENDED_BADLY if by_status.get(status)]
    if not ended:
        return BatchCounts(dict(by_status), {}, duplicates=duplicates)
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
    return BatchCounts({k: n for k, n in by_status.items() if n}, dict(failed), rerun, duplicates)


async def wait_for_batch(
    client: Client,
    batch_id: str,
    poll_s: float = 1.0,
    timeout_s: float = 3600,
    workflow_id: str | None = None,
) -> BatchCounts:
    """Wait until the BatchWorkflow is done and no video of the batch is running,
    polling (never awaiting thousands of results)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while await batch_is_running(client, workflow_id or batch_workflow_id(batch_id)):
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


def summarize(rows: Iterable[VideoRow]) -> tuple[int, int]:
    rows = list(rows)
    return (
        sum(r.status == "Completed" for r in rows),
        sum(r.status in ENDED_BADLY for r in rows),
    )
