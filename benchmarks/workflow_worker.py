"""What hosting the workflow code costs a worker process: its start time, resident
memory and the modules it loads, for a worker that runs the workflows and nothing else.

    python -m benchmarks.workflow_worker [--code DIR] [--runs 5]

Each run is a fresh interpreter (``--code``: the checkout whose workflow code it loads,
this one by default, so an older commit's checkout can be measured the same way) that
imports the four workflows and the sandbox runner, connects to an embedded dev server
and builds its Worker, which validates every workflow in the sandbox, then polls for a
moment. Printed: the median over the runs of the seconds from spawn to polling, the
seconds spent importing the workflow code, the resident memory once polling, and the
modules loaded, with which heavy libraries among them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.scratch import run_in_scratch
from devstack.stack import REPO_ROOT, Stack, StackConfig

HEAVY = ("torch", "torchaudio", "pyannote", "yt_dlp", "boto3", "botocore", "numpy", "scipy", "onnxruntime")

# runs in the child, in the checkout measured: nothing of this repository's newer code
CHILD = """
import asyncio, json, os, sys, time
t0 = time.perf_counter()
from temporalio.client import Client
from temporalio.worker import Worker
from workflows.batch import BatchWorkflow
from workflows.export import ExportWorkflow
from workflows.manifest import ManifestWorkflow
from workflows.sandbox import workflow_runner
from workflows.video import VideoWorkflow
imported = time.perf_counter() - t0

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

async def main():
    client = await Client.connect(sys.argv[1])
    worker = Worker(client, task_queue="workflow-worker-bench",
                    workflows=[VideoWorkflow, BatchWorkflow, ExportWorkflow, ManifestWorkflow],
                    workflow_runner=workflow_runner())
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)
    seen = {"import_s": imported, "rss_mib": rss_mib(), "modules": sorted(sys.modules)}
    print(json.dumps(seen), flush=True)
    await worker.shutdown()
    await task

asyncio.run(main())
os._exit(0)  # the SDK's native core can abort the interpreter as it finalizes
"""


def measure(code: Path, address: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, address], cwd=code, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    polling_s = time.perf_counter() - started - 0.2  # less the child's moment of polling
    proc.wait(timeout=60)
    if not line:
        raise SystemExit(f"the worker in {code} failed (exit {proc.returncode})")
    return {**json.loads(line), "polling_s": polling_s}


async def run(code: Path, runs: int, data: Path) -> int:
    stack = Stack(StackConfig.ephemeral(data, REPO_ROOT / "samples" / "audio"))
    stack.start_temporal()
    try:
        address = stack.settings().temporal_address
        results = [measure(code, address) for _ in range(runs)]
    finally:
        stack.stop()
    modules = results[-1]["modules"]
    project = [m for m in modules if m.split(".")[0] in ("core", "activities", "workflows")]
    heavy = [name for name in HEAVY if name in modules]
    print(f"workflow worker ({code}), median of {runs} fresh processes:")
    print(f"  spawn to polling      {statistics.median(r['polling_s'] for r in results):6.2f} s")
    print(f"  importing workflows   {statistics.median(r['import_s'] for r in results):6.2f} s")
    print(f"  resident memory       {statistics.median(r['rss_mib'] for r in results):6.0f} MiB")
    print(f"  modules loaded        {len(modules):6d} ({len(project)} of the project)")
    print(f"  heavy libraries       {', '.join(heavy) or 'none'}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", type=Path, default=REPO_ROOT, help="the checkout whose workflows to load")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    run_in_scratch("workflow-worker-", lambda tmp: run(args.code.resolve(), args.runs, tmp))


if __name__ == "__main__":
    main()
