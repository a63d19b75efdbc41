"""The CLI's manifest commands: ``schedule-manifests`` and ``manifest``.

The daily manifest (workflows/manifest.py) lists the videos committed on one UTC day.
These commands are not about one batch: one keeps the Temporal schedule that builds
it every day, the other builds one day's manifest now.
"""

from __future__ import annotations

import argparse
import time

from temporalio.client import Client

from core.service.settings import Settings

MANIFEST_SCHEDULE_ID = "manifest-daily"


async def cmd_schedule_manifests(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleAlreadyRunningError,
        ScheduleCalendarSpec,
        ScheduleRange,
        ScheduleSpec,
        ScheduleUpdate,
    )

    from core.contracts import queues

    # imports the pipeline's activities: only the commands that start a workflow pay for it
    from workflows.manifest import ManifestWorkflow

    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ManifestWorkflow.run,
            args=[settings.task_queue_prefix, None],
            id="manifest",
            task_queue=queues.workflow_queue(settings.task_queue_prefix),
        ),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(args.hour)], minute=[ScheduleRange(10)])]
        ),
    )
    try:
        await client.create_schedule(MANIFEST_SCHEDULE_ID, schedule)
        verb = "created"
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(MANIFEST_SCHEDULE_ID).update(
            lambda _: ScheduleUpdate(schedule=schedule)
        )
        verb = "updated"
    print(
        f"schedule {MANIFEST_SCHEDULE_ID} {verb}: daily at {args.hour:02d}:10 UTC, writes "
        "manifests/manifest_<day>.jsonl"
    )
    return 0


async def cmd_manifest(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    from core.contracts import queues

    # imports the pipeline's activities: only the commands that start a workflow pay for it
    from workflows.manifest import ManifestWorkflow

    result = await client.execute_workflow(
        ManifestWorkflow.run,
        args=[settings.task_queue_prefix, args.date],
        id=f"manifest-{args.date or 'yesterday'}-{int(time.time())}",
        task_queue=queues.workflow_queue(settings.task_queue_prefix),
    )
    print(f"manifest {result.date}: {result.videos} videos -> s3://{settings.s3_bucket}/{result.key}")
    return 0
