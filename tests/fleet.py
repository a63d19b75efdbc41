"""Real workers on a test's stack: start them and their videos, wait, read what they did.

One home for what the integration tests do to a stack (test_resilience,
test_exactly_once, test_export, test_hostile_sources, test_source_breaker): each test
gives its workers a task-queue prefix of its own, so they only see its videos.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from core.service.temporal import connect
from core.store.objects import ObjectStore
from devstack.stack import Stack
from starter.batch import start_batch
from starter.status import wait_for_batch
from tests.conftest import worker_events

CHUNK_S = "10"  # short chunks: a kill, a SIGTERM or a pause meets a model stage between two
STAGE_ENDS = {"stage.done", "stage.failed", "stage.cancelled"}  # how a stage attempt's log ends


def store_of(stack: Stack) -> ObjectStore:
    return ObjectStore(stack.settings())


def start_videos(stack: Stack, prefix: str, batch: str, rows: list[tuple[str, str]], **overrides) -> None:
    csv_path = stack.config.data_dir / f"{batch}.csv"
    csv_path.write_text("video_id,url\n" + "".join(f"{v},{u}\n" for v, u in rows))
    settings = stack.settings(task_queue_prefix=prefix, **overrides)

    async def go():
        client = await connect(settings)
        report = await start_batch(client, settings, csv_path, batch, overrides.get("gpu_class", "auto"))
        assert report.submitted and report.valid == len(rows) and not report.invalid

    asyncio.run(go())


def wait_batch(stack: Stack, batch: str, timeout_s: float = 300):
    async def go():
        client = await connect(stack.settings())
        return await wait_for_batch(client, batch, timeout_s=timeout_s)

    return asyncio.run(go())


def worker(stack: Stack, name: str, prefix: str, **env: str) -> subprocess.Popen:
    """A worker on its own queues. These tests run the same few recordings under many
    video ids on purpose (a fault per video), so the duplicate check is off: it would
    rightly commit all but the first as Duplicates and run no model stage for them."""
    return stack.start_worker(
        name,
        **{
            "PIPELINE_TASK_QUEUE_PREFIX": prefix,
            "PIPELINE_CHUNK_S": CHUNK_S,
            "PIPELINE_DUPLICATE_CHECK": "false",
            **env,
        },
    )


def events(stack: Stack, name: str) -> list[dict]:
    return worker_events(stack, name)


def wait_for_event(stack: Stack, name: str, event: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for e in events(stack, name):
            if e.get("event") == event:
                return e
        time.sleep(0.2)
    raise AssertionError(f"{name}: no {event} within {timeout_s} s")


def chunk_keys(store: ObjectStore, video_id: str, stage: str) -> list[str]:
    """The stage's chunk checkpoints (not the CAM++ frames the diarize chunks keep beside them)."""
    keys = store.list_keys(f"{store.keys(video_id).work_root}{stage}/")
    return [k for k in keys if re.search(r"/chunk-\d+\.npz$", k)]


def wait_until(predicate, timeout_s: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ts(event: dict) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def computed_chunks(stack: Stack, name: str, workflow_id: str, stage: str) -> list[int]:
    return [
        e["chunk"]
        for e in events(stack, name)
        if e.get("event") == "chunk.computed"
        and e.get("stage") == stage
        and e.get("workflow_id") == workflow_id
    ]


def stages_ended(stack: Stack, name: str, workflow_id: str) -> bool:
    """Whether every stage ``name`` started for ``workflow_id`` has logged its end."""
    ours = [e for e in events(stack, name) if e.get("workflow_id") == workflow_id]
    started = Counter(e["activity"] for e in ours if e.get("event") == "stage.started")
    ended = Counter(e["activity"] for e in ours if e.get("event") in STAGE_ENDS)
    return started == ended


@contextlib.asynccontextmanager
async def in_process_workers(
    client: Client, by_queue: dict[str, tuple[list[type], list[Callable]]]
) -> AsyncIterator[None]:
    """Real Temporal Workers in this process, one per task queue with its workflows and
    (stand-in) activities: how a test runs a workflow's own logic without the pipeline."""
    with ThreadPoolExecutor(8) as executor:
        async with contextlib.AsyncExitStack() as running:
            for queue, (workflows, activities) in by_queue.items():
                worker = Worker(
                    client,
                    task_queue=queue,
                    workflows=workflows,
                    activities=activities,
                    activity_executor=executor,
                    workflow_runner=UnsandboxedWorkflowRunner(),
                )
                await running.enter_async_context(worker)
            yield
