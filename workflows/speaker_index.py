"""SpeakerIndexWorkflow: link newly committed videos' speakers to the corpus's global ones.

Started on demand (``python -m starter speakers --batch-id ID | --all``) and by the daily
ManifestWorkflow for the day it lists. One activity does the work (activities/
speaker_index.py): it skips what an earlier run linked, so running it again is safe.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.speaker_index import SpeakerIndexActivities
    from core.contracts import queues
    from core.contracts.corpus import SpeakerIndexRequest, SpeakerIndexResult
    from core.contracts.ids import SPEAKER_INDEX_WORKFLOW
    from workflows import policies


@workflow.defn(name=SPEAKER_INDEX_WORKFLOW)
class SpeakerIndexWorkflow:
    @workflow.run
    async def run(self, req: SpeakerIndexRequest) -> SpeakerIndexResult:
        return await workflow.execute_activity_method(
            SpeakerIndexActivities.link_speakers,
            req,
            task_queue=queues.workflow_queue(req.queue_prefix),
            **policies.SPEAKER_INDEX.options(),
        )
