"""Run a batch while killing workers at random; count what was lost or done twice.

    python -m benchmarks.chaos --videos 30 --kill-every 15 [--workers 2] [--seed 1]

Starts its own embedded stack (Temporal dev server, S3-compatible store, media
server) in a temporary folder, starts ``--workers`` worker processes, starts the
batch, and every ``--kill-every`` seconds (jittered) kills one worker with SIGKILL and
starts a replacement. When the batch is done it checks the storage server itself:

- lost: a video without its committed metadata.json;
- duplicated: a video whose metadata.json was committed by a workflow run other than
  the one that completed it (i.e. processed to the end twice). metadata.json is
  written with If-None-Match, so the server refuses any rewrite; refused attempts
  are counted too.

Prints ``chaos: N completed, L lost, D duplicated, K kills`` and exits 0 iff nothing
was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import tempfile
import time
from pathlib import Path

from core.exit import exit_now
from core.storage import ObjectStore
from core.temporal import connect
from devstack.stack import REPO_ROOT, Stack, StackConfig
from starter.batch import batch_counts, batch_is_running, start_batch
from workflows.batch import video_workflow_id

SAMPLES = REPO_ROOT / "samples" / "audio"
BATCH = "chaos"


async def run(videos: int, kill_every: float, workers: int, seed: int, timeout_s: float, data: Path) -> int:
    rng = random.Random(seed)
    stack = Stack(StackConfig.ephemeral(data, SAMPLES))
    stack.start(worker=False)
    try:
        env = {"PIPELINE_CHUNK_S": "10"}
        generation = itertools.count()
        live = [f"chaos-w{k}-g{next(generation)}" for k in range(workers)]
        for name in live:
            stack.start_worker(name, **env)

        files = sorted(p.name for p in SAMPLES.glob("*.ogg"))
        csv_path = data / "chaos.csv"
        ids = [f"chaos-{i:04d}" for i in range(videos)]
        csv_path.write_text(
            "video_id,url\n" + "".join(f"{v},{stack.media_url}/{files[i % len(files)]}\n" for i, v in enumerate(ids))
        )
        settings = stack.settings(heartbeat_timeout_s=10)
        client = await connect(settings)
        ObjectStore(settings).ensure_bucket()
        report = await start_batch(client, settings, csv_path, BATCH)
        assert report.submitted and report.valid == videos, report
        print(f"chaos: started a batch of {report.valid} videos on {workers} workers, killing one every ~{kill_every:.0f} s",
              flush=True)  # fmt: skip

        kills = 0
        started = time.monotonic()
        next_kill = started + kill_every * rng.uniform(0.5, 1.5)
        while True:
            counts = await batch_counts(client, BATCH)
            if counts.total >= videos and counts.open == 0 and not await batch_is_running(client, "batch-" + BATCH):
                break
            if time.monotonic() - started > timeout_s:
                print(f"chaos: timed out after {timeout_s:.0f} s with {counts.open} running", flush=True)
                break
            if time.monotonic() >= next_kill:
                victim = rng.choice(live)
                stack.procs[victim].kill()
                stack.procs[victim].wait()
                stack.procs.pop(victim)
                kills += 1
                replacement = f"{victim.rsplit('-g', 1)[0]}-g{next(generation)}"
                live[live.index(victim)] = replacement
                stack.start_worker(replacement, **env)
                done = counts.by_status.get("Completed", 0)
                print(f"chaos: kill {kills}: {victim} (SIGKILL), {done}/{videos} done", flush=True)
                next_kill = time.monotonic() + kill_every * rng.uniform(0.5, 1.5)
            await asyncio.sleep(1.0)

        completed, lost, duplicated = await audit(client, ObjectStore(settings), ids)
        refused = sum(_count_events(stack.logs, "upload.commit_exists"))
        elapsed = time.monotonic() - started
        print(f"chaos: {elapsed:.0f} s, {refused} refused rewrites of a committed metadata.json")
        print(f"chaos: {completed} completed, {lost} lost, {duplicated} duplicated, {kills} kills", flush=True)
        return 0 if lost == 0 and duplicated == 0 and completed == videos else 1
    finally:
        stack.stop()


async def audit(client, store: ObjectStore, ids: list[str]) -> tuple[int, int, int]:
    """Check every video against the storage server and the workflow that completed it."""
    completed = lost = duplicated = 0
    for video_id in ids:
        keys = store.keys(video_id)
        metadata_keys = [k for k in store.list_keys(keys.root) if k.endswith("metadata.json")]
        if metadata_keys != [keys.metadata]:
            lost += 1
            continue
        committed_by = store.get_json(keys.metadata).get("committed_by", {})
        description = await client.get_workflow_handle(video_workflow_id(video_id)).describe()
        if description.status is None or description.status.name != "COMPLETED":
            lost += 1
            continue
        completed += 1
        if committed_by.get("run_id") != description.run_id:
            duplicated += 1
    return completed, lost, duplicated


def _count_events(logs: Path, event: str):
    for path in logs.glob("chaos-w*.log"):
        yield sum(1 for line in path.read_text(errors="replace").splitlines()
                  if line.startswith("{") and json.loads(line).get("event") == event)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=30)
    parser.add_argument("--kill-every", type=float, default=15.0, help="seconds between kills (jittered)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--data-dir", type=Path, help="keep the stack's files (logs, storage) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        data = args.data_dir or Path(tmp)
        code = asyncio.run(run(args.videos, args.kill_every, args.workers, args.seed, args.timeout, data))
    exit_now(code)


if __name__ == "__main__":
    main()
