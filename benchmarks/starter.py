"""Starting the real job: validate a 340,000-row CSV and start its batch.

    python -m benchmarks.starter --rows 340000 [--page-through]

Generates a CSV of that size (YouTube-like ids and URLs, a few bad rows mixed in),
then runs the starter's own code on the embedded stack: stream-validate every row,
upload the valid ones, start the BatchWorkflow (dry run: the workflow pages through
the rows but starts no video). Prints wall time and the process's peak memory
(goals: <= 60 s, <= 300 MB). With ``--page-through`` it also waits until the dry-run
batch has read every page, to show the workflow side keeps up.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import string
import time
from pathlib import Path

from benchmarks.scratch import run_in_scratch
from core.service.temporal import connect
from devstack.memory import own_peak_kib
from devstack.stack import REPO_ROOT, Stack, StackConfig
from starter.batch import start_batch
from starter.status import batch_is_running, batch_progress

ALPHABET = string.ascii_letters + string.digits + "-_"


def generate_csv(path: Path, rows: int, seed: int = 7) -> int:
    """YouTube-shaped rows; every 10,000th row is broken on purpose. Returns bad rows."""
    rng = random.Random(seed)
    bad = 0
    with path.open("w") as handle:
        handle.write("video_id,url,duration_s\n")
        for i in range(rows):
            video_id = "".join(rng.choices(ALPHABET, k=11))
            if i % 10_000 == 9_999:
                handle.write(f"{video_id}/../x,not-a-url,\n")
                bad += 1
                continue
            handle.write(f"{video_id},https://www.youtube.com/watch?v={video_id},{rng.randint(600, 10800)}\n")
    return bad


def peak_rss_mb() -> float:
    return own_peak_kib() / 1024


async def run(rows: int, page_through: bool, data: Path) -> int:
    csv_path = data / "english_podcasts.csv"
    t0 = time.perf_counter()
    bad = generate_csv(csv_path, rows)
    generated = time.perf_counter() - t0
    size_mb = csv_path.stat().st_size / 2**20
    stack = Stack(StackConfig.ephemeral(data, REPO_ROOT / "samples" / "audio"))
    stack.start()
    try:
        settings = stack.settings()
        client = await connect(settings)
        rss_before = peak_rss_mb()
        t1, cpu = time.perf_counter(), time.process_time()
        report = await start_batch(client, settings, csv_path, "bench", dry_run=True, window=1000)
        started, cpu = time.perf_counter() - t1, time.process_time() - cpu
        print(f"starter: {rows} rows ({size_mb:.0f} MB CSV, generated in {generated:.1f} s)")
        print(
            f"  validate + upload + start batch: {started:.1f} s, {cpu:.1f} CPU s "
            f"({rows / started:,.0f} rows/s), {report.valid} valid, "
            f"{len(report.invalid)} invalid (expected {bad})"
        )
        print(
            f"  peak memory of the starter process: {peak_rss_mb():.0f} MB (before starting: "
            f"{rss_before:.0f} MB)"
        )
        if page_through:
            t2 = time.perf_counter()
            while await batch_is_running(client, report.workflow_id):
                await asyncio.sleep(1)
            progress = await batch_progress(client, "bench", report.workflow_id)
            print(
                f"  dry-run batch paged through {progress.done} rows in {time.perf_counter() - t2:.1f} s "
                f"({progress.runs} workflow runs via continue-as-new)"
            )
        return 0 if len(report.invalid) == bad and report.valid == rows - bad else 1
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=340_000)
    parser.add_argument("--page-through", action="store_true")
    args = parser.parse_args()
    run_in_scratch("bench-starter-", lambda tmp: run(args.rows, args.page_through, tmp))


if __name__ == "__main__":
    main()
