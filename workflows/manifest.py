"""ManifestWorkflow: one JSONL line per video completed on a given UTC day.

Run daily by a Temporal Schedule (``python -m starter schedule-manifests``); object
stores cannot append, so the day's manifest is rebuilt whole and written once more
if the workflow runs again: the same day always gives the same file. Then it sweeps
the intermediates whose retention has passed (activities/sweep.py), and links the
day's videos' speakers to the corpus's global speakers (activities/speaker_index.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.manifest import ManifestActivities
    from activities.speaker_index import SpeakerIndexActivities
    from activities.sweep import SweepActivities
    from core.contracts import queues
    from core.contracts.corpus import SpeakerIndexRequest
    from core.contracts.ids import MANIFEST_WORKFLOW
    from core.contracts.manifest import ManifestResult
    from workflows import policies


# workflow.patched id (2026-11-29): runs recorded before it replay without the sweep;
# retired as docs/design.md ("Retiring a patch") says
SWEEP = "sweep-work"
SPEAKERS = "speaker-index"  # (2026-12-07) runs recorded before it replay without linking


@workflow.defn(name=MANIFEST_WORKFLOW)
class ManifestWorkflow:
    @workflow.run
    async def run(self, queue_prefix: str, date: str | None = None) -> ManifestResult:
        # a scheduled run just after midnight writes the day that just ended
        day = date or (workflow.now() - timedelta(days=1)).date().isoformat()
        result = await workflow.execute_activity_method(
            ManifestActivities.write_manifest,
            day,
            task_queue=queues.workflow_queue(queue_prefix),
            **policies.MANIFEST.options(),
        )
        if not workflow.patched(SWEEP):
            return result
        swept = await workflow.execute_activity_method(
            SweepActivities.sweep_work,
            task_queue=queues.workflow_queue(queue_prefix),
            **policies.SWEEP.options(),
        )
        result = result.model_copy(update={"swept": swept})
        if not workflow.patched(SPEAKERS):
            return result
        speakers = await workflow.execute_activity_method(
            SpeakerIndexActivities.link_speakers,
            SpeakerIndexRequest(queue_prefix=queue_prefix, day=day),
            task_queue=queues.workflow_queue(queue_prefix),
            **policies.SPEAKER_INDEX.options(),
        )
        return result.model_copy(update={"speakers": speakers})
