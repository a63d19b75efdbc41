"""``python -m devstack.demo``: the embedded stack processing the sample batch.

Prints one line per video and a summary, then keeps everything up for the Web UI
until Ctrl-C. Without a terminal on stdin it stops after the batch and exits 0 only
if every sample video completed. State persists in .data/, so a second run starts
nothing already done.
"""

from __future__ import annotations

import asyncio
import csv
import signal
import sys

from core.contracts.export import ExportSpec
from core.service.exit import exit_now
from core.service.logs import configure_logging
from core.service.temporal import connect
from devstack.stack import REPO_ROOT, Stack, StackConfig, StackError
from starter.batch import start_batch
from starter.export import run_export
from starter.progress import showing_progress
from starter.report import summary_lines, write_report
from starter.status import batch_progress, list_videos, summarize, wait_for_batch
from starter.watch import print_videos

SAMPLES = REPO_ROOT / "samples"
BATCH_ID = "sample"
REPORT_DIR = REPO_ROOT / ".data" / "report"


async def run_batch(stack: Stack) -> int:
    settings = stack.settings()
    client = await connect(settings)
    csv_path = SAMPLES / "sample_batch.csv"
    with csv_path.open() as handle:
        expected = sum(1 for _ in csv.DictReader(handle))
    report = await start_batch(client, settings, csv_path, BATCH_ID, window=expected)
    for error in report.invalid:
        print(f"  invalid row: {error}")
    async with showing_progress(client, BATCH_ID):
        await wait_for_batch(client, BATCH_ID, timeout_s=1800)
    progress = await batch_progress(client, BATCH_ID)
    print(
        f"batch {BATCH_ID}: started {progress.total - progress.not_started}, skipped {progress.not_started} "
        f"(already running or completed), invalid {len(report.invalid)}",
        flush=True,
    )
    await print_videos(client, settings, BATCH_ID)
    completed, _ = summarize(await list_videos(client, BATCH_ID))
    # the product a trainer reads: the batch as Lhotse Shar clips, and its yield report
    exported = await run_export(
        client, settings, ExportSpec(batch_id=BATCH_ID, format="lhotse-shar"), wait=True
    )
    yielded, png_key = await write_report(client, settings, BATCH_ID, REPORT_DIR)
    print("\n".join(summary_lines(yielded, png_key)) + f" (copy: {REPORT_DIR / 'report.png'})")
    return 0 if completed == expected and not report.invalid and exported is not None else 1


def main() -> int:
    configure_logging("WARNING", "console")
    data_dir = REPO_ROOT / ".data"
    stack = Stack(StackConfig(data_dir=data_dir, media_dir=SAMPLES / "audio"))
    try:
        stack.start()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(
            f"Temporal {stack.temporal_address}, Web UI {stack.ui_url}, S3 {stack.s3_url}, logs {stack.logs}"
        )
        code = asyncio.run(run_batch(stack))
        print(f"Web UI: {stack.ui_url}/namespaces/default/workflows?query=BatchId%3D%22{BATCH_ID}%22")
        print(
            "Query a video: .venv/bin/temporal workflow query --address "
            f"{stack.temporal_address} --workflow-id video-ep01-jingle-and-two-hosts --name status"
        )
        if sys.stdin.isatty():
            print("Stack is up; Ctrl-C stops it.", flush=True)
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return code
    except KeyboardInterrupt:
        return 130
    finally:
        print("stopping the stack ...", flush=True)
        stack.stop()


if __name__ == "__main__":
    exit_now(main())
