"""Export throughput: committed videos -> Lhotse Shar and WebDataset shards, on this machine.

    python -m benchmarks.export                  # the sample batch (samples/sample_batch.csv)
    python -m benchmarks.export --minutes 60     # one built 60-minute podcast (benchmarks.podcast)

Runs the embedded stack and its worker, processes the videos, then exports them with
``starter export``'s own code path (ExportWorkflow on the export queue) in each format
and view, and prints per export: clips (or windows), audio exported, wall time, the
worker's CPU time for it, clips per second, audio-hours exported per CPU-hour, and the
shard bytes per audio-hour.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.podcast import BATCH_ID as PODCAST_BATCH
from benchmarks.podcast import build_podcast, tree_cpu_s, wait_for_worker
from core.contracts.export import ExportSpec
from devstack.stack import REPO_ROOT, Stack, StackConfig

SAMPLES = REPO_ROOT / "samples"
EXPORTS = [("webdataset", "clips"), ("lhotse-shar", "clips"), ("lhotse-shar", "windows")]


async def process(stack: Stack, csv_path: Path, batch_id: str) -> tuple[int, str]:
    """Run the batch; the number of committed videos and their pooled stage costs."""
    from core.service.temporal import connect
    from core.store.objects import ObjectStore
    from starter.batch import start_batch
    from starter.status import list_videos, wait_for_batch

    settings = stack.settings()
    client = await connect(settings)
    await start_batch(client, settings, csv_path, batch_id, window=50)
    await wait_for_batch(client, batch_id, timeout_s=3600)
    done = [r.video_id for r in await list_videos(client, batch_id) if r.status == "Completed"]
    store = ObjectStore(settings)
    stats = [store.get_json(store.keys(v).stats) for v in done]
    minutes = sum(st["audio_s"] for st in stats) / 60
    stages: dict[str, float] = {}
    for st in stats:
        for stage, seconds in st["stage_compute_s"].items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    costs = ", ".join(f"{k} {v / minutes:.2f}" for k, v in stages.items()) if minutes else "-"
    return len(done), f"{minutes:.1f} audio-min; compute s per audio-min: {costs}"


async def export_once(stack: Stack, batch_id: str, fmt: str, view: str, worker_pid: int) -> str:
    from core.service.temporal import connect
    from starter.export import run_export

    settings = stack.settings()
    client = await connect(settings)
    cpu0, wall0 = tree_cpu_s(worker_pid), time.perf_counter()
    totals = await run_export(
        client, settings, ExportSpec(batch_id=batch_id, format=fmt, view=view), wait=True
    )
    cpu, wall = tree_cpu_s(worker_pid) - cpu0, time.perf_counter() - wall0
    if totals is None:
        return f"{fmt:<12} {view:<8} FAILED"
    hours = totals.audio_s / 3600
    return (
        f"{fmt:<12} {view:<8} {totals.items:>6} {totals.audio_s / 60:>8.1f} {wall:>7.1f} {cpu:>7.1f} "
        f"{totals.items / wall:>8.1f} {hours / (cpu / 3600) if cpu else 0:>10.0f} "
        f"{totals.bytes / 1e6 / hours if hours else 0:>9.0f} "
        f"{totals.bytes / 1e6 / max(totals.videos, 1):>9.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    from core.service.logs import configure_logging

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, help="export one built podcast of this length instead")
    args = parser.parse_args(argv)
    configure_logging("WARNING", "console")
    root = Path(tempfile.mkdtemp(prefix="export-bench-"))
    try:
        if args.minutes:
            media = root / "media"
            media.mkdir()
            m4a, built = build_podcast(args.minutes, 0, media, root)
            rows, batch_id, what = (
                [(PODCAST_BATCH, m4a.name)],
                PODCAST_BATCH,
                f"a {args.minutes:g}-minute podcast",
            )
        else:
            media = SAMPLES / "audio"
            with (SAMPLES / "sample_batch.csv").open() as handle:
                rows = [(r["video_id"], Path(r["url"]).name) for r in csv.DictReader(handle)]
            batch_id, what = "sample", "the sample batch"
        stack = Stack(StackConfig.ephemeral(root / "stack", media))
        stack.start()
        try:
            wait_for_worker(stack)
            csv_path = root / "batch.csv"
            csv_path.write_text("video_id,url\n" + "".join(f"{v},{stack.media_url}/{n}\n" for v, n in rows))
            done, costs = asyncio.run(process(stack, csv_path, batch_id))
            print(
                f"export benchmark: {what}, {done} videos committed ({costs}); {os.cpu_count()} cores",
                flush=True,
            )
            print(
                f"{'format':<12} {'view':<8} {'items':>6} {'audio min':>8} {'wall s':>7} {'CPU s':>7} "
                f"{'items/s':>8} {'audio-h/CPU-h':>10} {'MB/aud-h':>9} {'MB/shard':>9}"
            )
            for fmt, view in EXPORTS:
                print(
                    asyncio.run(export_once(stack, batch_id, fmt, view, stack.procs["worker"].pid)),
                    flush=True,
                )
        finally:
            stack.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
