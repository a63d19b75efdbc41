"""The CLI's watch commands: ``status``, ``stats``, and the wait of ``start --wait``.

What an operator reads while a batch runs: videos by state and failures by type, the
batch's rate, ETA and cost per GPU class, a progress line while waiting, and one line
per video at the end. Read-only; the queries themselves are starter/status.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from temporalio.client import Client

from core.contracts.batch import BatchProgress
from core.service.settings import Settings
from starter.status import (
    batch_counts,
    batch_progress,
    format_video_line,
    list_videos,
    summarize,
    wait_for_batch,
    with_live_stages,
)


async def wait_and_report(client: Client, settings: Settings, batch_id: str) -> int:
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
