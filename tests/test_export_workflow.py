"""ExportWorkflow's own logic: paging, parallel pages and continue-as-new, with stand-ins.

Why: an export of 340,000 videos reads thousands of pages, so its workflow continues
as new every ``pages_per_run`` pages, carrying where it stopped and what it counted.
A wrong offset or a lost total there skips or repeats videos in the training set, and
the end-to-end export tests (test_export) never read enough pages to continue. Here
the real ExportWorkflow runs on the session's Temporal server with stand-in
activities (the workflow's logic is what is tested; the real activities are
test_export's): 7 rows, 1 row per page, 2 pages per run.
"""

from __future__ import annotations

import asyncio
import threading

from temporalio import activity
from temporalio.client import Client

from core.contracts import queues
from core.contracts.batch import BatchPage, BatchPageRequest
from core.contracts.export import (
    ExportJob,
    ExportPageRequest,
    ExportPageResult,
    ExportSpec,
    ExportTotals,
    ShardRecord,
)
from core.contracts.video import VideoSpec
from core.service.temporal import connect
from tests.fleet import in_process_workers
from workflows.export import ExportWorkflow

ROWS = [f"v{i}" for i in range(7)]
NOT_COMMITTED = {"v3"}  # a row whose video is not committed (yet): counted, not exported
PREFIX = "export-can"


class StandIns:
    """The three activities ExportWorkflow calls, over an in-memory batch of ROWS."""

    def __init__(self) -> None:
        self.exported: list[str] = []
        self.offsets: list[int] = []
        self.lock = threading.Lock()

    @activity.defn(name="read_batch_page")
    def read_batch_page(self, request: BatchPageRequest) -> BatchPage:
        with self.lock:
            self.offsets.append(request.offset)
        rows = ROWS[request.offset : request.offset + request.max_rows]
        end = request.offset + len(rows)
        return BatchPage(
            specs=[VideoSpec(video_id=v, url=f"http://127.0.0.1/{v}") for v in rows if v in NOT_COMMITTED],
            committed=[v for v in rows if v not in NOT_COMMITTED],
            next_offset=end,
            eof=end >= len(ROWS),
        )

    @activity.defn(name="export_videos")
    def export_videos(self, request: ExportPageRequest) -> ExportPageResult:
        with self.lock:
            self.exported += request.video_ids
        return ExportPageResult(
            shards=[
                ShardRecord(video_id=v, files=[f"{v}.tar"], items=2, audio_s=10.0, bytes=100)
                for v in request.video_ids
            ]
        )

    @activity.defn(name="write_export_index")
    def write_export_index(self, spec: ExportSpec) -> ExportTotals:
        with self.lock:
            videos = len(set(self.exported))
        return ExportTotals(videos=videos, items=2 * videos, audio_s=10.0 * videos, bytes=100 * videos)


async def run_export(client: Client, stand_ins: StandIns, job: ExportJob) -> tuple[ExportTotals, int]:
    """The export's result and how many runs its workflow id went through."""
    stand_in_queues = {
        queues.workflow_queue(PREFIX): (
            [ExportWorkflow],
            [stand_ins.read_batch_page, stand_ins.write_export_index],
        ),
        queues.export_queue(PREFIX): ([], [stand_ins.export_videos]),
    }
    async with in_process_workers(client, stand_in_queues):
        handle = await client.start_workflow(
            ExportWorkflow.run, job, id="export-can", task_queue=queues.workflow_queue(PREFIX)
        )
        result = await handle.result()
        progress = await handle.query(ExportWorkflow.progress)  # the last run, replayed
        assert progress.not_committed == len(NOT_COMMITTED), progress
    for _ in range(100):  # visibility lags the runs a moment
        runs = [wf async for wf in client.list_workflows('WorkflowId = "export-can"')]
        if len(runs) >= 4:
            break
        await asyncio.sleep(0.1)
    return result, len(runs)


def test_an_export_continues_as_new_and_exports_every_committed_video_once(stack):
    stand_ins = StandIns()
    job = ExportJob(
        spec=ExportSpec(batch_id="can", format="webdataset"),
        input_key="_batches/can/input.csv",
        queue_prefix=PREFIX,
        page_size=1,
        parallel=2,
        pages_per_run=2,
    )

    async def go():
        client = await connect(stack.settings())
        return await run_export(client, stand_ins, job)

    result, runs = asyncio.run(go())
    committed = [v for v in ROWS if v not in NOT_COMMITTED]
    assert sorted(stand_ins.exported) == committed, "every committed video exported, none twice"
    assert stand_ins.offsets == list(range(len(ROWS))), "each page read once, in order, across the runs"
    assert runs == 4, "7 pages at 2 per run: 4 runs"
    assert result.videos == len(committed) and result.not_committed == len(NOT_COMMITTED), result
