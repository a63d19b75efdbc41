"""ExportWorkflow: a batch's committed videos -> training shards, one shard per video.

Reads the batch's input CSV page by page (the batch's own ``read_batch_page``, which
also tells which rows are committed), hands each page's committed videos to
``export_videos`` on the export queue, a few pages at once, and ends by writing the
export's index. Running it again for the same spec extends the export: videos with
a shard are skipped in storage, videos committed since get theirs. Workflow id
``export-{batch_id}-{spec name}``: one run at a time per export.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.batch import BatchActivities
    from activities.export import ExportActivities
    from core.contracts import queues
    from core.contracts.batch import BatchPage, BatchPageRequest
    from core.contracts.export import ExportJob, ExportPageRequest, ExportPageResult, ExportTotals
    from core.contracts.ids import EXPORT_WORKFLOW, PROGRESS_QUERY
    from workflows import policies


@workflow.defn(name=EXPORT_WORKFLOW)
class ExportWorkflow:
    def __init__(self) -> None:
        self._totals = ExportTotals()

    @workflow.run
    async def run(self, job: ExportJob) -> ExportTotals:
        self._totals = job.done or ExportTotals()
        offset, eof, pages = job.next_offset, False, 0
        running: set[asyncio.Task[None]] = set()
        while not eof:
            if pages >= job.pages_per_run:
                await asyncio.gather(*running)
                workflow.continue_as_new(job.model_copy(update={"next_offset": offset, "done": self._totals}))
            page = await self._read_page(job, offset)
            offset, eof, pages = page.next_offset, page.eof, pages + 1
            self._totals = self._totals.plus(ExportPageResult(not_committed=[s.video_id for s in page.specs]))
            if page.committed:
                while len(running) >= job.parallel:
                    await workflow.wait_condition(lambda: len(running) < job.parallel)
                task = asyncio.ensure_future(self._export(job, page.committed))
                running.add(task)
                task.add_done_callback(running.discard)
        await asyncio.gather(*running)
        indexed = await workflow.execute_activity_method(
            ExportActivities.write_export_index,
            job.spec,
            task_queue=queues.workflow_queue(job.queue_prefix),
            **policies.EXPORT_INDEX.options(),
        )
        # the index counts every shard ever written; what is not committed yet is this run's news
        return indexed.model_copy(
            update={
                "not_committed": self._totals.not_committed,
                "failed": self._totals.failed,
                "duplicates": self._totals.duplicates,
            }
        )

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> ExportTotals:
        """What this run (and the runs before it) exported so far."""
        return self._totals

    async def _read_page(self, job: ExportJob, offset: int) -> BatchPage:
        request = BatchPageRequest(
            input_key=job.input_key,
            offset=offset,
            max_rows=job.page_size,
            batch_id=job.spec.batch_id,
            skip_committed=True,
        )
        return await workflow.execute_activity_method(
            BatchActivities.read_batch_page,
            request,
            task_queue=queues.workflow_queue(job.queue_prefix),
            **policies.BATCH_STORAGE.options(),
        )

    async def _export(self, job: ExportJob, video_ids: list[str]) -> None:
        result = await workflow.execute_activity_method(
            ExportActivities.export_videos,
            ExportPageRequest(job=job, video_ids=video_ids),
            task_queue=queues.export_queue(job.queue_prefix),
            **policies.EXPORT.options(heartbeat=timedelta(seconds=job.heartbeat_timeout_s)),
        )
        self._totals = self._totals.plus(result)
