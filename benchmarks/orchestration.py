"""Is orchestration ever the bottleneck? The real VideoWorkflow with instant activities
against a bare 5-activity workflow, on the embedded stack (SQLite WAL dev server).

    python -m benchmarks.orchestration --videos 500

Both run in one process on one Temporal dev server: first the bare workflow (five
no-op activities in sequence), then the pipeline's VideoWorkflow (its real code:
queues, policies, search-attribute upserts, parallel stages, status bookkeeping) with
every activity replaced by one that returns a valid result at once. Prints starts/s
and completed workflows/s for both and their ratio (goal: >= 0.9).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio.worker import Worker

from benchmarks.bare_workflow import BareWorkflow, noop
from benchmarks.stand_ins import stand_in_activities
from core import queues
from core.exit import exit_now
from core.models import VideoJob, VideoSpec
from core.temporal import connect
from devstack.stack import REPO_ROOT, Stack, StackConfig
from workflows.video import VideoWorkflow

PREFIX = "orch"


STAND_INS = stand_in_activities()  # every stage instant


async def measure(client, kind: str, count: int, tag: str = "warm") -> tuple[float, float]:
    """Start ``count`` workflows of ``kind``; return (starts/s, completed workflows/s)."""
    began = time.perf_counter()
    semaphore = asyncio.Semaphore(64)

    async def start(i: int):
        async with semaphore:
            if kind == "bare":
                return await client.start_workflow(
                    "BareWorkflow", i, id=f"bare-{tag}-{i}", task_queue=queues.workflow_queue(PREFIX)
                )
            spec = VideoSpec(video_id=f"orch-{tag}-{i}", url="http://127.0.0.1/x.ogg", batch_id="orch")
            job = VideoJob(spec=spec, queue_prefix=PREFIX, gpu_class="cpu")
            return await client.start_workflow(
                "VideoWorkflow", job, id=f"video-orch-{tag}-{i}", task_queue=queues.workflow_queue(PREFIX)
            )

    handles = await asyncio.gather(*(start(i) for i in range(count)))
    started = time.perf_counter() - began
    for handle in handles:  # awaited one at a time: never thousands of long polls at once
        await handle.result()
    finished = time.perf_counter() - began
    return count / started, count / finished


async def run(videos: int, data: Path) -> int:
    stack = Stack(StackConfig.ephemeral(data, REPO_ROOT / "samples" / "audio"))
    stack.start_temporal()
    try:
        client = await connect(stack.settings())
        executor = ThreadPoolExecutor(256)  # unused by the async stand-ins; sized to the slots
        common = dict(activity_executor=executor, max_concurrent_workflow_tasks=64, max_concurrent_activities=256)
        workers = [
            Worker(client, task_queue=queues.workflow_queue(PREFIX), workflows=[VideoWorkflow, BareWorkflow],
                   activities=[noop, STAND_INS.lookup], **common),
            Worker(client, task_queue=queues.upload_queue(PREFIX), activities=STAND_INS.upload, **common),
            Worker(client, task_queue=queues.download_queue(PREFIX), activities=STAND_INS.download, **common),
            Worker(client, task_queue=queues.gpu_queue(PREFIX, "cpu"), activities=STAND_INS.gpu, **common),
        ]  # fmt: skip
        tasks = [asyncio.create_task(w.run()) for w in workers]
        await measure(client, "bare", 20)  # warm up both paths
        await measure(client, "video", 20)
        # alternate rounds, so drift in a shared machine's load hits both alike
        rounds = 5
        totals = {"bare": [0.0, 0.0], "video": [0.0, 0.0]}  # seconds starting, seconds to finish
        for r in range(rounds):
            for kind in ("bare", "video") if r % 2 == 0 else ("video", "bare"):
                n = videos // rounds
                starts, rate = await measure(client, kind, n, tag=f"r{r}")
                totals[kind][0] += n / starts
                totals[kind][1] += n / rate
        n_total = videos // rounds * rounds
        bare_starts, bare_rate = n_total / totals["bare"][0], n_total / totals["bare"][1]
        video_starts, video_rate = n_total / totals["video"][0], n_total / totals["video"][1]
        print(f"orchestration: {n_total} workflows each in {rounds} alternating rounds, 1 worker process, "
              "SQLite WAL dev server")  # fmt: skip
        print(f"  bare 5-activity workflow : {bare_starts:7.1f} starts/s  {bare_rate:6.2f} workflows/s")
        print(f"  pipeline VideoWorkflow   : {video_starts:7.1f} starts/s  {video_rate:6.2f} workflows/s "
              f"(1 local + 5 activities, 2 in parallel, 4 search-attribute upserts)")  # fmt: skip
        print(f"  ratio pipeline/bare      : {video_rate / bare_rate:6.2f} (goal >= 0.90)")
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        return 0
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orchestration-") as tmp:
        code = asyncio.run(run(args.videos, Path(tmp)))
    exit_now(code)


if __name__ == "__main__":
    main()
