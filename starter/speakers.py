"""``python -m starter speakers``: link committed videos' speakers across the corpus now.

The daily ManifestWorkflow links each day's videos by itself; this runs the same
SpeakerIndexWorkflow on demand, for one batch or for every video the daily manifests
list, and waits for it. Videos an earlier run linked are skipped, so it is safe to repeat.
"""

from __future__ import annotations

import argparse
import time

from temporalio.client import Client

from core.contracts.corpus import SpeakerIndexRequest, SpeakerIndexResult
from core.service.settings import Settings
from core.store.layout import key_prefix, speaker_runs_folder


def add_parser(sub: argparse._SubParsersAction, batch_id: type) -> None:
    cmd = sub.add_parser("speakers", help="link committed videos' speakers to the corpus's global speakers")
    which = cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--batch-id", type=batch_id, help="the batch's completed videos")
    which.add_argument("--all", action="store_true", help="every video the daily manifests list")
    cmd.add_argument("--json", action="store_true", help="print the result as JSON")


async def cmd_speakers(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    from core.contracts import queues

    # imports the pipeline's activities: only the commands that start a workflow pay for it
    from workflows.speaker_index import SpeakerIndexWorkflow

    request = SpeakerIndexRequest(queue_prefix=settings.task_queue_prefix, batch_id=args.batch_id)
    result: SpeakerIndexResult = await client.execute_workflow(
        SpeakerIndexWorkflow.run,
        request,
        id=f"speakers-{args.batch_id or 'all'}-{int(time.time())}",
        task_queue=queues.workflow_queue(settings.task_queue_prefix),
    )
    if args.json:
        print(result.model_dump_json(indent=1))
        return 0
    print(
        summary_line(
            result, f"s3://{settings.s3_bucket}/{speaker_runs_folder(key_prefix(settings.s3_prefix))}"
        )
    )
    return 0


def summary_line(result: SpeakerIndexResult, table: str) -> str:
    if result.summary is None:
        return f"speakers: nothing new to link ({result.candidates} videos named, {result.skipped} skipped)"
    s = result.summary
    return (
        f"speakers: run {s.run} linked {s.videos} videos ({result.skipped} skipped): {s.speakers} speakers, "
        f"{s.joined} joined a known speaker, {s.global_speakers} global speakers in all -> {table}"
    )
