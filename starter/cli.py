"""``python -m starter``: start a batch from a CSV, watch it, steer it.

python -m starter start  --csv FILE --batch-id ID [--window N] [--gpu-class C] [--limit K]
                         [--dry-run] [--wait]
python -m starter status --batch-id ID [--videos] [--json]
python -m starter stats  --batch-id ID [--json]
python -m starter pause|resume|cancel --batch-id ID
python -m starter retry-failed --batch-id ID [--error-type T]
python -m starter schedule-manifests [--hour H]     (daily manifest schedule, idempotent)
python -m starter manifest [--date YYYY-MM-DD]      (build one day's manifest now)
python -m starter export --batch-id ID --format lhotse-shar|webdataset [filters] [--wait]
python -m starter report --batch-id ID [--json]     (yield report: hours, quality, cost)
python -m starter speakers --batch-id ID | --all [--json]  (speakers across videos)

This module is the parser and the dispatch: each argument that needs no Temporal
(batch id, GPU class, window, the CSV's header) is checked here, before connecting.
The handlers live by what they do: starter/steer.py (start, pause, resume, cancel,
retry-failed), starter/watch.py (status, stats), starter/manifests.py, and
starter/export.py, starter/report.py and starter/speakers.py, which add their own
subcommands.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from core.contracts.batch import DEFAULT_WINDOW, MAX_WINDOW
from core.contracts.ids import validate_video_id
from core.service.settings import SettingsError, load_settings
from core.service.temporal import connect
from starter import export, manifests, report, speakers, steer, watch
from starter.batch import GPU_CLASSES, UnknownGpuClass, check_window
from starter.csv_input import CsvFormatError, check_header


def _batch_id(value: str) -> str:
    try:
        return validate_video_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("video_id", "batch id")) from None


def _gpu_class(value: str) -> str:
    """Checked before connecting: a class no worker serves would leave videos waiting forever."""
    if value not in GPU_CLASSES:
        raise argparse.ArgumentTypeError(str(UnknownGpuClass(value, source="")))
    return value


def _window(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    try:
        return check_window(number)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _csv_file(value: str) -> Path:
    """Checked before connecting: a missing file or a bad header needs no Temporal."""
    path = Path(value)
    try:
        check_header(path)
    except CsvFormatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m starter", description="Start a batch from a CSV, watch it, steer it."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="validate a CSV and start its BatchWorkflow (idempotent)")
    start.add_argument("--csv", type=_csv_file, required=True, help="columns: video_id,url[,duration_s]")
    start.add_argument("--batch-id", type=_batch_id, required=True)
    start.add_argument(
        "--window",
        type=_window,
        default=DEFAULT_WINDOW,
        help=f"videos in flight at most (default {DEFAULT_WINDOW}, at most {MAX_WINDOW})",
    )
    start.add_argument(
        "--gpu-class",
        type=_gpu_class,
        default="auto",
        help=f"GPU queue class: {', '.join(GPU_CLASSES)}; auto = PIPELINE_GPU_CLASS",
    )
    start.add_argument("--limit", type=int, help="only the first K valid rows")
    start.add_argument("--dry-run", action="store_true", help="validate and page through, start no video")
    start.add_argument("--wait", action="store_true", help="wait for the batch and print one line per video")

    for name, text in [
        ("status", "videos by state, failures by error type"),
        ("stats", "progress, throughput, ETA and cost per GPU class"),
        ("pause", "start no new videos (running ones finish)"),
        ("resume", "start videos again"),
        ("cancel", "cancel the batch and its running videos"),
        ("retry-failed", "start the failed videos of a batch again"),
    ]:
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--batch-id", type=_batch_id, required=True)
        if name == "status":
            cmd.add_argument("--videos", action="store_true", help="also a table of the videos")
        if name in ("status", "stats"):
            cmd.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "retry-failed":
            cmd.add_argument("--error-type", help="only videos that failed with this ErrorType")
            cmd.add_argument("--wait", action="store_true")

    schedule = sub.add_parser("schedule-manifests", help="create or update the daily manifest schedule")
    schedule.add_argument("--hour", type=int, default=0, help="UTC hour of the daily run (minute 10)")
    manifest = sub.add_parser("manifest", help="build one day's manifest now and wait for it")
    manifest.add_argument("--date", help="YYYY-MM-DD (UTC); default: yesterday")
    export.add_parser(sub, _batch_id)
    report.add_parser(sub, _batch_id)
    speakers.add_parser(sub, _batch_id)
    return parser


COMMANDS = {
    "schedule-manifests": manifests.cmd_schedule_manifests,
    "manifest": manifests.cmd_manifest,
    "start": steer.cmd_start,
    "status": watch.cmd_status,
    "stats": watch.cmd_stats,
    "pause": steer.cmd_signal,
    "resume": steer.cmd_signal,
    "cancel": steer.cmd_signal,
    "retry-failed": steer.cmd_retry_failed,
    "export": export.cmd_export,
    "report": report.cmd_report,
    "speakers": speakers.cmd_speakers,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2

    async def run() -> int:
        client = await connect(settings, wait_s=10)
        return await COMMANDS[args.command](args, settings, client)

    try:
        return asyncio.run(run())
    except RuntimeError as exc:  # connection refused and the like
        print(f"error: {exc}", file=sys.stderr)
        return 2
