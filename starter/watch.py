"""The CLI's watch commands: ``status``, ``stats``, and the wait of ``start --wait``.

What an operator reads while a batch runs: videos by state and failures by type, the
batch's rate, ETA and cost per GPU class, a progress line while waiting, and one line
per video at the end. Read-only; the queries themselves are starter/status.py.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime

from temporalio.client import Client

from core.contracts.batch import BatchProgress
from core.service.settings import Settings
from core.store.layout import VideoKeys, key_prefix
from starter.progress import duration, showing_progress
from starter.status import (
    ENDED_BADLY,
    BatchCounts,
    VideoRow,
    batch_counts,
    batch_progress,
    list_videos,
    summarize,
    wait_for_batch,
    with_live_stages,
)


async def wait_and_report(client: Client, settings: Settings, batch_id: str) -> int:
    async with showing_progress(client, batch_id):
        await wait_for_batch(client, batch_id)
    progress = await batch_progress(client, batch_id)
    print(
        f"batch {batch_id}: started {progress.total - progress.not_started}, skipped {progress.not_started} "
        f"(already running or completed), completed {progress.completed}, failed {progress.failed}"
    )
    return await print_videos(client, settings, batch_id)


ID_WIDTH = (12, 28)  # the video column fits the longest id within these; longer ones are cut


def video_table(rows: list[VideoRow], now: datetime | None = None) -> list[str]:
    """One line per video under a header, within 100 columns: problems first (by error
    type), then running videos (longest first), then the rest by id. The last column is
    what an operator acts on: the error type and the stage it ended in, or the live stage."""
    now = now or datetime.now(UTC)
    width = min(max([ID_WIDTH[0], *(len(r.video_id) for r in rows)]), ID_WIDTH[1])

    def elapsed(row: VideoRow) -> float:
        return ((row.closed or now) - row.started).total_seconds() if row.started else 0.0

    def order(row: VideoRow) -> tuple:
        if row.status in ENDED_BADLY:
            return (0, row.error_type or "", row.video_id)
        if row.status == "Running":
            return (1, -elapsed(row), row.video_id)
        return (2, "", row.video_id)

    def what(row: VideoRow) -> str:
        if row.status in ENDED_BADLY:  # its PipelineStage says only how it ended
            return row.error_type or row.status
        return (row.stage or "-") if row.status == "Running" else "-"

    header = f"{'video':<{width}} {'state':<10} {'elapsed':>8} {'spk':>3} {'usable':>6} {'audio':>8}"
    lines = [f"{header}  stage/error"]
    for row in sorted(rows, key=order):
        video = row.video_id if len(row.video_id) <= width else row.video_id[: width - 1] + "~"
        usable = f"{row.usable_pct:.1f}%" if row.usable_pct is not None else "-"
        audio = duration(row.audio_s) if row.audio_s is not None else "-"
        speakers = row.num_speakers if row.num_speakers is not None else "-"
        lines.append(
            f"{video:<{width}} {row.status.lower():<10} {duration(elapsed(row)):>8} {speakers:>3} "
            f"{usable:>6} {audio:>8}  {what(row)}"
        )
    return lines


async def print_videos(client: Client, settings: Settings, batch_id: str) -> int:
    rows = await with_live_stages(client, await list_videos(client, batch_id))
    print("\n".join(video_table(rows)))
    completed, failed = summarize(rows)
    if completed:
        print(f"outputs of a completed video: {output_folder(settings, '<video>')}")
    print(f"summary: {completed} completed, {failed} failed")
    return 0 if failed == 0 else 1


def output_folder(settings: Settings, video_id: str) -> str:
    """Where a committed video's files are: its schema version's folder."""
    return f"s3://{settings.s3_bucket}/{VideoKeys(key_prefix(settings.s3_prefix), video_id).root}"


async def cmd_status(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    counts = await batch_counts(client, args.batch_id)
    if args.json:
        return await _status_json(client, args, counts)
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
    if counts.duplicates:
        print(
            f"  of the completed, {counts.duplicates} duplicates:"
            " copies of an earlier video's audio, not processed"
        )
    if counts.rerun:
        print(f"  ({counts.rerun} earlier runs of videos run again are not counted)")
    for error_type, n in sorted(counts.failed_by_error.items(), key=lambda kv: -kv[1]):
        print(f"  failed {error_type}: {n}")
    if args.videos:
        await print_videos(client, settings, args.batch_id)
    return 0


async def _status_json(client: Client, args: argparse.Namespace, counts: BatchCounts) -> int:
    """``status --json``: the counts (and with --videos the rows, live stages included)."""
    out: dict = {
        "batch_id": args.batch_id,
        "videos": counts.total,
        "by_status": counts.by_status,
        "failed_by_error": counts.failed_by_error,
        "rerun": counts.rerun,
        "duplicates": counts.duplicates,
    }
    if args.videos:
        rows = await with_live_stages(client, await list_videos(client, args.batch_id))
        out["rows"] = [
            {**asdict(row), "started": _iso(row.started), "closed": _iso(row.closed)} for row in rows
        ]
    print(json.dumps(out, indent=1))
    return 0 if counts.total else 1


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _rate(videos_per_h: float, audio_h_per_h: float) -> str:
    return f"{videos_per_h:.1f} videos/h, {audio_h_per_h:.2f} audio-h/h"


def format_stats(p: BatchProgress, prices: dict[str, float]) -> str:
    eta = duration(p.eta_s) if p.eta_s else "-"
    lines = [
        f"batch {p.batch_id}: {p.done}/{p.total} done ({100 * p.done / max(p.total, 1):.1f}%)"
        f"{'  PAUSED' if p.paused else ''}",
        f"  completed {p.completed}, already done {p.already_completed}, "
        f"skipped {p.skipped}, failed {p.failed}, running {p.running}, waiting {p.waiting}",
        f"  rate, last 10 min: {_rate(p.videos_per_h_recent, p.audio_h_per_h_recent)}",
        f"  rate, overall:     {_rate(p.videos_per_h_overall, p.audio_h_per_h_overall)}",
        f"  elapsed {duration(p.elapsed_s)}, ETA {eta}, workflow runs {p.runs}",
    ]
    if p.duplicates:
        lines.append(
            f"  duplicates {p.duplicates}: {p.duplicate_audio_s / 3600:.2f} audio h"
            " an earlier video holds, not processed"
        )
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
