"""ManifestWorkflow: one JSONL line per video completed on a given UTC day.

Run daily by a Temporal Schedule (``python -m starter schedule-manifests``); object
stores cannot append, so the day's manifest is rebuilt whole and written once more
if the workflow runs again: the same day always gives the same file. Then it sweeps
the intermediates whose retention has passed (activities/sweep.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core import queues
    from core.models import ManifestResult, SweepResult
    from workflows import policies


SWEEP = "sweep-work"  # workflow.patched id: runs recorded before it replay without the sweep


@workflow.defn(name="ManifestWorkflow")
class ManifestWorkflow:
    @workflow.run
    async def run(self, queue_prefix: str, date: str | None = None) -> ManifestResult:
        # a scheduled run just after midnight writes the day that just ended
        day = date or (workflow.now() - timedelta(days=1)).date().isoformat()
        result: ManifestResult = await workflow.execute_activity(
            "write_manifest",
            day,
            task_queue=queues.workflow_queue(queue_prefix),
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=policies.UPLOAD.retry,
            result_type=ManifestResult,
        )
        if not workflow.patched(SWEEP):
            return result
        swept: SweepResult = await workflow.execute_activity(
            "sweep_work",
            task_queue=queues.workflow_queue(queue_prefix),
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=policies.UPLOAD.retry,
            result_type=SweepResult,
        )
        return result.model_copy(update={"swept": swept})
