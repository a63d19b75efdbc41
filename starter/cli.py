"""``python -m starter``: start a batch from a CSV, watch it, steer it.

python -m starter start  --csv FILE --batch-id ID [--window N] [--gpu-class C] [--limit K]
                         [--dry-run] [--wait]
python -m starter status --batch-id ID [--videos]
python -m starter stats  --batch-id ID [--json]
python -m starter pause|resume|cancel --batch-id ID
python -m starter retry-failed --batch-id ID [--error-type T]
python -m starter schedule-manifests [--hour H]     (daily manifest schedule, idempotent)
python -m starter manifest [--date YYYY-MM-DD]      (build one day's manifest now)
python -m starter export --batch-id ID --format lhotse-shar|webdataset [filters] [--wait]
python -m starter report --batch-id ID [--json]     (yield report: hours, quality, cost)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from temporalio.client import Client

from core import batch_input
from core.batches import DEFAULT_WINDOW, MAX_WINDOW, BatchProgress
from core.errors import StoreUnsafe
from core.ids import batch_workflow_id
from core.layout import batch_input_key
from core.models import validate_video_id
from core.settings import Settings
from core.storage import ObjectStore
from core.temporal import connect
from starter import export, report
from starter.batch import (
    GPU_CLASSES,
    BatchInputConflict,
    UnknownGpuClass,
    batch_counts,
    batch_progress,
    check_window,
    format_video_line,
    list_videos,
    start_batch,
    summarize,
    wait_for_batch,
    with_live_stages,
)
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
            cmd.add_argument("--videos", action="store_true", help="also one line per video")
        if name == "stats":
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
    return parser


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
        f"workflow {report.workflow_id}{' (dry run)' if args.dry_run else ''}"
    )
    if args.wait:
        return await _wait_and_report(client, settings, args.batch_id)
    return 0


async def _wait_and_report(client: Client, settings: Settings, batch_id: str) -> int:
    watcher = asyncio.create_task(_show_progress(client, batch_id))
    try:
        await wait_for_batch(client, batch_id)
    finally:
        watcher.cancel()
    progress = await batch_progress(client, batch_id)
    print(
        f"batch {batch_id}: started {progress.total - progress.not_started}, skipped {progress.not_started} "
        f"(already running or completed), completed {progress.completed}, failed {progress.failed}"
    )
    return await print_videos(client, settings, batch_id)


async def _show_progress(client: Client, batch_id: str, every_s: float = 10.0) -> None:
    """A progress line on stderr while --wait waits (a bar when stderr is a terminal)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            p = await batch_progress(client, batch_id)
        except Exception:
            continue  # between two runs of continue-as-new
        filled = int(30 * p.done / max(p.total, 1))
        bar = "#" * filled + "." * (30 - filled)
        eta = f"{p.eta_s / 60:.0f} min" if p.eta_s else "n/a"
        end = "\r" if sys.stderr.isatty() else "\n"
        print(
            f"[{bar}] {p.done}/{p.total} done, {p.running} running, {p.failed} failed, ETA {eta}",
            end=end,
            file=sys.stderr,
            flush=True,
        )


async def print_videos(client: Client, settings: Settings, batch_id: str) -> int:
    rows = await with_live_stages(client, await list_videos(client, batch_id))
    for row in rows:
        print(format_video_line(row, settings))
    completed, failed = summarize(rows)
    print(f"summary: {completed} completed, {failed} failed")
    return 0 if failed == 0 else 1


async def cmd_status(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    counts = await batch_counts(client, args.batch_id)
    if not counts.total:
        print(f"batch {args.batch_id}: no videos found")
        return 1
    states = ", ".join(f"{name.lower()} {n}" for name, n in sorted(counts.by_status.items()))
    print(f"batch {args.batch_id}: {counts.total} videos: {states}")
    try:
        progress = await batch_progress(client, args.batch_id)
    except Exception:  # the batch's workflow is gone from history: its videos remain
        progress = None
    if progress and progress.paused_reason:
        print(f"  paused: {progress.paused_reason}")
    if counts.rerun:
        print(f"  ({counts.rerun} earlier runs of videos run again are not counted)")
    for error_type, n in sorted(counts.failed_by_error.items(), key=lambda kv: -kv[1]):
        print(f"  failed {error_type}: {n}")
    if args.videos:
        await print_videos(client, settings, args.batch_id)
    return 0


def format_stats(p: BatchProgress, prices: dict[str, float]) -> str:
    eta = "n/a" if p.eta_s is None else time.strftime("%H:%M:%S", time.gmtime(p.eta_s))
    if p.eta_s and p.eta_s >= 86400:
        eta = f"{p.eta_s / 86400:.1f} days"
    lines = [
        f"batch {p.batch_id}: {p.done}/{p.total} done ({100 * p.done / max(p.total, 1):.1f}%)"
        f"{'  PAUSED' if p.paused else ''}",
        f"  completed {p.completed}, already done {p.already_completed}, skipped {p.skipped}, failed "
        f"{p.failed}, "
        f"running {p.running}, waiting {p.waiting}",
        f"  rate: {p.videos_per_h_recent:.1f} videos/h and {p.audio_h_per_h_recent:.2f} audio-h/h (last 10 "
        "min); "
        f"{p.videos_per_h_overall:.1f} videos/h, {p.audio_h_per_h_overall:.2f} audio-h/h overall",
        f"  elapsed {p.elapsed_s / 3600:.2f} h, ETA {eta}, workflow runs {p.runs}",
    ]
    if p.resumes_at:
        resumes = time.strftime("%H:%M:%S UTC", time.gmtime(p.resumes_at))
        lines.append(f"  PAUSED BY THE SOURCE BREAKER until {resumes}: {p.paused_reason}")
    for error_type, n in sorted(p.failed_by_error.items(), key=lambda kv: -kv[1]):
        lines.append(f"  failed {error_type}: {n}")
    if p.per_class:
        lines.append(
            f"  {'class':<10} {'videos':>7} {'audio h':>8} {'gpu h':>7} {'$/gpu-h':>8} {'cost $':>8} "
            f"{'audio-h/gpu-h':>14}"
        )
        total_cost = 0.0
        for cls, use in sorted(p.per_class.items()):
            gpu_h = use.gpu_s / 3600
            price = prices.get(cls, 0.0)
            total_cost += gpu_h * price
            ratio = (use.audio_s / 3600) / gpu_h if gpu_h else 0.0
            lines.append(
                f"  {cls:<10} {use.videos:>7} {use.audio_s / 3600:>8.2f} {gpu_h:>7.3f} "
                f"{price:>8.2f} {gpu_h * price:>8.2f} {ratio:>14.1f}"
            )
        lines.append(f"  total cost so far ${total_cost:.2f} (GPU compute seconds x PIPELINE_GPU_PRICES)")
    return "\n".join(lines)


async def cmd_stats(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    progress = await batch_progress(client, args.batch_id)
    if args.json:
        print(json.dumps(progress.model_dump(), indent=1))
    else:
        print(format_stats(progress, settings.gpu_prices))
    return 0


async def cmd_signal(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    handle = client.get_workflow_handle(batch_workflow_id(args.batch_id))
    if args.command == "cancel":
        await handle.cancel()
    else:
        await handle.signal(args.command)
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
            workflow_id_=f"{batch_workflow_id(args.batch_id)}-retry-{stamp}",
        )
    print(f"batch {args.batch_id}: retrying {report.valid} failed videos as {report.workflow_id}")
    if args.wait:
        await wait_for_batch(client, args.batch_id, workflow_id_=report.workflow_id)
        return await print_videos(client, settings, args.batch_id)
    return 0


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

    from core import queues

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
    from core import queues

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


COMMANDS = {
    "schedule-manifests": cmd_schedule_manifests,
    "manifest": cmd_manifest,
    "start": cmd_start,
    "status": cmd_status,
    "stats": cmd_stats,
    "pause": cmd_signal,
    "resume": cmd_signal,
    "cancel": cmd_signal,
    "retry-failed": cmd_retry_failed,
    "export": export.cmd_export,
    "report": report.cmd_report,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()

    async def run() -> int:
        client = await connect(settings, wait_s=10)
        return await COMMANDS[args.command](args, settings, client)

    try:
        return asyncio.run(run())
    except RuntimeError as exc:  # connection refused and the like
        print(f"error: {exc}", file=sys.stderr)
        return 2
