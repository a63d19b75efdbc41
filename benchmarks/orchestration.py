"""Is orchestration ever the bottleneck? The real VideoWorkflow with instant activities
against bare 5-activity workflows, on the embedded stack (SQLite WAL dev server).

    python -m benchmarks.orchestration --videos 500

One process, one Temporal dev server, rounds alternating between three kinds so drift
in a shared machine's load hits them alike:
- ``bare``: five no-op activities in sequence on the workflow's own task queue (the
  goal's baseline; the SDK dispatches such activities eagerly, skipping matching);
- ``bare, activities on another queue``: the same, dispatched through a second task
  queue, as stages that run on other machines must be;
- ``pipeline``: the pipeline's VideoWorkflow (its real code: queues, policies,
  search-attribute upserts, parallel stages, status bookkeeping) with every activity
  replaced by one that returns a valid result at once, hosted as the production
  worker hosts it (sandbox runner; the commit a local activity of the workflow
  worker, the download and the model stages on their queues).
Prints completed workflows/s for each, the server's and the worker's CPU per
workflow, and the pipeline's ratio to both baselines (goal: >= 0.9 of ``bare``).
Activity timeouts of both kinds are set past the run's end: a timeout timer fires
(and costs the server) even after its activity finished, so otherwise each kind's
timers land in the rounds of whichever kind runs 30-60 s later, which made the ratio
swing between 0.88 and 1.04 from one run to the next.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from temporalio.worker import Worker

from benchmarks import bare_workflow
from benchmarks.bare_workflow import ACTIVITY_QUEUE_SUFFIX, TIMEOUT, BareQueuedWorkflow, BareWorkflow, noop
from benchmarks.scratch import run_in_scratch
from benchmarks.stand_ins import stand_in_activities
from core.contracts import queues
from core.contracts.video import VideoJob, VideoSpec
from core.service.temporal import connect
from devstack.stack import REPO_ROOT, Stack, StackConfig
from workflows.sandbox import workflow_runner, write_bytecode
from workflows.video import VideoWorkflow

PREFIX = "orch"
KINDS = {
    "bare": "bare, activities on its own queue",
    "bare-queued": "bare, activities on another queue",
    "pipeline": "pipeline VideoWorkflow",
}
STAND_INS = stand_in_activities()  # every stage instant


@dataclass
class Totals:
    workflows: int = 0
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    worker_cpu_s: float = 0.0


def _process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_round(client, kind: str, count: int, tag: str) -> None:
    """Start ``count`` workflows of ``kind`` (at most 64 starts in flight) and wait for all."""
    semaphore = asyncio.Semaphore(64)
    queue = queues.workflow_queue(PREFIX)

    async def start(i: int):
        async with semaphore:
            if kind == "bare":
                return await client.start_workflow(
                    BareWorkflow.run, i, id=f"bare-{tag}-{i}", task_queue=queue
                )
            if kind == "bare-queued":
                return await client.start_workflow(
                    BareQueuedWorkflow.run, i, id=f"bareq-{tag}-{i}", task_queue=queue
                )
            spec = VideoSpec(video_id=f"orch-{tag}-{i}", url="http://127.0.0.1/x.ogg", batch_id="orch")
            job = VideoJob(
                spec=spec, queue_prefix=PREFIX, gpu_class="cpu", heartbeat_timeout_s=TIMEOUT.total_seconds()
            )
            return await client.start_workflow(
                VideoWorkflow.run, job, id=f"video-orch-{tag}-{i}", task_queue=queue
            )

    handles = await asyncio.gather(*(start(i) for i in range(count)))
    for handle in handles:  # awaited one at a time: never thousands of long polls at once
        await handle.result()


async def run(videos: int, rounds: int, data: Path) -> int:
    write_bytecode(Path(bare_workflow.__file__))  # as workflow_runner() does for the pipeline's modules
    stack = Stack(StackConfig.ephemeral(data, REPO_ROOT / "samples" / "audio"))
    stack.start_temporal()
    server_pid = stack.procs["temporal"].pid
    try:
        client = await connect(stack.settings())
        executor = ThreadPoolExecutor(256)  # unused by the async stand-ins; sized to the slots
        common = {
            "activity_executor": executor,
            "max_concurrent_workflow_tasks": 64,
            "max_concurrent_activities": 256,
        }
        workflow_queue = queues.workflow_queue(PREFIX)
        workers = [
            Worker(
                client,
                task_queue=workflow_queue,
                workflows=[VideoWorkflow, BareWorkflow, BareQueuedWorkflow],
                activities=[noop, *STAND_INS.commit],
                workflow_runner=workflow_runner(),
                **common,
            ),
            Worker(client, task_queue=workflow_queue + ACTIVITY_QUEUE_SUFFIX, activities=[noop], **common),
            Worker(client, task_queue=queues.download_queue(PREFIX), activities=STAND_INS.download, **common),
            Worker(client, task_queue=queues.gpu_queue(PREFIX, "cpu"), activities=STAND_INS.gpu, **common),
        ]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        for kind in KINDS:  # warm up every path
            await run_round(client, kind, 20, "warm")
        totals = {kind: Totals() for kind in KINDS}
        per_round = videos // rounds
        order = list(KINDS)
        for r in range(rounds):
            for kind in order[r % len(order) :] + order[: r % len(order)]:
                t = totals[kind]
                wall, server, own = time.perf_counter(), _process_cpu_s(server_pid), _own_cpu_s()
                await run_round(client, kind, per_round, f"r{r}")
                t.wall_s += time.perf_counter() - wall
                t.server_cpu_s += _process_cpu_s(server_pid) - server
                t.worker_cpu_s += _own_cpu_s() - own
                t.workflows += per_round
        print(
            f"orchestration: {per_round * rounds} workflows of each kind in {rounds} rotating rounds, "
            "1 worker process, SQLite WAL dev server"
        )
        print(f"  {'':36} {'workflows/s':>11} {'server ms/wf':>13} {'worker ms/wf':>13}")
        for kind, label in KINDS.items():
            t = totals[kind]
            print(
                f"  {label:36} {t.workflows / t.wall_s:11.2f} {1000 * t.server_cpu_s / t.workflows:13.1f} "
                f"{1000 * t.worker_cpu_s / t.workflows:13.1f}"
            )
        rate = {kind: t.workflows / t.wall_s for kind, t in totals.items()}
        print(
            "  (pipeline: 4 activities on 2 other queues (download, GPU), 2 of them in parallel, the commit "
            "a local"
            " activity, 1 search-attribute upsert)"
        )
        print(f"  ratio pipeline/bare               : {rate['pipeline'] / rate['bare']:5.2f} (goal >= 0.90)")
        print(f"  ratio pipeline/bare-another-queue : {rate['pipeline'] / rate['bare-queued']:5.2f}")
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        return 0
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=500, help="workflows of each kind")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    run_in_scratch("orchestration-", lambda tmp: run(args.videos, args.rounds, tmp))


if __name__ == "__main__":
    main()
