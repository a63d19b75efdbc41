"""``python -m starter``: start a batch from a CSV and watch it.

    python -m starter start  --csv FILE --batch-id ID [--gpu-class auto|t4|...] [--wait]
    python -m starter status --batch-id ID [--videos]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from core.models import validate_video_id
from core.settings import Settings
from core.temporal import connect
from starter.batch import (
    batch_counts,
    format_video_line,
    list_videos,
    start_batch,
    summarize,
    wait_for_batch,
)
from starter.csv_input import CsvFormatError


def _batch_id(value: str) -> str:
    try:
        return validate_video_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("video_id", "batch id")) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m starter", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="start one VideoWorkflow per CSV row (idempotent)")
    start.add_argument("--csv", type=Path, required=True, help="columns: video_id,url[,duration_s]")
    start.add_argument("--batch-id", type=_batch_id, required=True)
    start.add_argument("--gpu-class", default="auto", help="GPU queue class; auto = PIPELINE_GPU_CLASS")
    start.add_argument("--wait", action="store_true", help="wait for the batch and print one line per video")

    status = sub.add_parser("status", help="counts by state, failures by error type")
    status.add_argument("--batch-id", type=_batch_id, required=True)
    status.add_argument("--videos", action="store_true", help="also one line per video")
    return parser


async def cmd_start(args: argparse.Namespace, settings: Settings) -> int:
    if not args.csv.is_file():
        print(f"error: {args.csv} does not exist", file=sys.stderr)
        return 2
    client = await connect(settings)
    try:
        report = await start_batch(client, settings, args.csv, args.batch_id, args.gpu_class)
    except CsvFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for error in report.invalid:
        print(f"invalid row: {error}", file=sys.stderr)
    print(
        f"batch {args.batch_id}: started {report.started}, "
        f"skipped {report.skipped} (already running or completed), invalid {len(report.invalid)}"
    )
    if args.wait:
        await wait_for_batch(client, args.batch_id)
        return await print_videos(client, settings, args.batch_id)
    return 0


async def print_videos(client, settings: Settings, batch_id: str) -> int:
    rows = await list_videos(client, batch_id)
    for row in rows:
        print(format_video_line(row, settings))
    completed, failed = summarize(rows)
    print(f"summary: {completed} completed, {failed} failed")
    return 0 if failed == 0 else 1


async def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    client = await connect(settings)
    counts = await batch_counts(client, args.batch_id)
    if not counts.total:
        print(f"batch {args.batch_id}: no workflows found")
        return 1
    states = ", ".join(f"{name.lower()} {n}" for name, n in sorted(counts.by_status.items()))
    print(f"batch {args.batch_id}: {counts.total} videos: {states}")
    for error_type, n in sorted(counts.failed_by_error.items(), key=lambda kv: -kv[1]):
        print(f"  failed {error_type}: {n}")
    if args.videos:
        await print_videos(client, settings, args.batch_id)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    command = {"start": cmd_start, "status": cmd_status}[args.command]
    try:
        return asyncio.run(command(args, settings))
    except RuntimeError as exc:  # connection refused and the like
        print(f"error: {exc}", file=sys.stderr)
        return 2
