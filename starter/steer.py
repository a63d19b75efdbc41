"""The CLI's steering commands: ``start``, ``pause``/``resume``/``cancel``, ``retry-failed``.

Each one changes what a batch does: starts its BatchWorkflow (starter/batch.py),
signals or cancels it, or starts its failed videos again under the same batch id.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from temporalio.client import Client

from core.contracts.errors import StoreUnsafe
from core.contracts.ids import PAUSE_SIGNAL, RESUME_SIGNAL, batch_workflow_id
from core.service.settings import Settings
from core.store import batch_input
from core.store.layout import batch_input_key
from core.store.objects import ObjectStore
from starter.batch import BatchInputConflict, UnknownGpuClass, start_batch
from starter.csv_input import CsvFormatError
from starter.progress import showing_progress
from starter.status import batch_is_running, batch_progress, list_videos, wait_for_batch
from starter.watch import print_videos, wait_and_report


async def cmd_start(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    try:
        report = await start_batch(
            client,
            settings,
            args.csv,
            args.batch_id,
            args.gpu_class,
            window=args.window,
            limit=args.limit,
            dry_run=args.dry_run,
        )
    except (CsvFormatError, UnknownGpuClass, BatchInputConflict, StoreUnsafe) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for error in report.invalid:
        print(f"invalid row: {error}", file=sys.stderr)
    if not report.submitted:
        print(
            f"batch {args.batch_id}: {report.reason}; see `python -m starter stats --batch-id "
            f"{args.batch_id}`"
        )
        return 0
    print(
        f"batch {args.batch_id}: {report.valid} valid rows, {len(report.invalid)} invalid; "
        f"workflow {report.workflow_id}{' (dry run: starts no video)' if args.dry_run else ''}"
    )
    for note in report.notes:
        print(f"note: {note}")
    if args.dry_run:
        if args.wait:
            while await batch_is_running(client, report.workflow_id):
                await asyncio.sleep(1)
            progress = await batch_progress(client, args.batch_id, report.workflow_id)
            print(f"dry run {args.batch_id}: paged through {progress.done} of {progress.total} rows")
        return 0
    if args.wait:
        return await wait_and_report(client, settings, args.batch_id)
    return 0


async def cmd_signal(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    handle = client.get_workflow_handle(batch_workflow_id(args.batch_id))
    if args.command == "cancel":
        await handle.cancel()
    else:
        await handle.signal({"pause": PAUSE_SIGNAL, "resume": RESUME_SIGNAL}[args.command])
    print(f"batch {args.batch_id}: {args.command} sent")
    return 0


async def cmd_retry_failed(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    """Collect the batch's failed videos (optionally of one ErrorType) and start them
    again as a batch of their own, under the same BatchId."""
    failed = {
        row.video_id
        for row in await list_videos(client, args.batch_id)
        if row.status == "Failed" and (args.error_type is None or row.error_type == args.error_type)
    }
    if not failed:
        print(f"batch {args.batch_id}: nothing to retry")
        return 0
    store = ObjectStore(settings)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "input.csv"
        store.download_file(batch_input_key(store.prefix, args.batch_id), source)
        retry_csv = Path(tmp) / "retry.csv"
        retry_csv.write_text(batch_input.as_operator_csv(source.read_bytes().splitlines(), failed))
        report = await start_batch(
            client,
            settings,
            retry_csv,
            args.batch_id,
            input_name=f"retry-{stamp}.csv",
            workflow_id=f"{batch_workflow_id(args.batch_id)}-retry-{stamp}",
        )
    print(f"batch {args.batch_id}: retrying {report.valid} failed videos as {report.workflow_id}")
    if args.wait:
        async with showing_progress(client, args.batch_id, report.workflow_id):
            await wait_for_batch(client, args.batch_id, workflow_id=report.workflow_id)
        return await print_videos(client, settings, args.batch_id)
    return 0
