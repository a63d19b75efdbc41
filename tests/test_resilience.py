"""Tests that kill things: real worker processes, real servers, real faults.

Each test uses its own task-queue prefix, so its workers only see its videos; the two
that stop a server run on servers of their own (``own_stack``). Faults are injected at
the edges only: signals to real processes, a server stopped and restarted, an HTTP
server answering 429 (for a while, or for good) or cutting a body short,
``PIPELINE_FAULT_HANG`` holding a model stage in native code, and
``PIPELINE_FAULT_OOM_ABOVE_BATCH`` raising CUDA's OOM error inside the real batching
code (there is no GPU here), and ``PIPELINE_MEMORY_LIMIT_MIB`` set below what a worker
holds once started (its real memory guard and slot sizing do the rest). The one
monkeypatch (``count_connect_attempts``) injects no fault: it counts the starter's
connection attempts around the SDK's real ``Client.connect``, so the restart tests
assert on attempts instead of seconds.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from temporalio.api.enums.v1 import TimeoutType

from core.contracts.video import SourceBreaker
from core.service.temporal import TemporalUnavailable, connect
from devstack.stack import Stack, free_port
from tests.conftest import metric_total, scrape_metrics, status_query
from tests.fleet import (
    CHUNK_S,
    STAGE_ENDS,
    chunk_keys,
    computed_chunks,
    events,
    start_videos,
    store_of,
    ts,
    wait_batch,
    wait_for_event,
    wait_until,
    worker,
)

pytestmark = pytest.mark.integration


# A resumed run reuses the chunks stored before the kill and computes the rest on another
# process; on this CPU that gives the undisturbed run's turns exactly (measured largest
# boundary difference: 0.0 s); 0.05 s (five 10 ms frames) leaves room for another BLAS.
SEGMENT_TOLERANCE_S = 0.05


def speaker_mapping(a: list[dict], b: list[dict]) -> dict[str, str]:
    """Each speaker label of ``a`` to the label of ``b`` it shares the most speech with
    (one to one): labels are arbitrary names, so two runs that find the same speakers
    are compared after this mapping, whatever they call them."""
    from scipy.optimize import linear_sum_assignment

    la, lb = sorted({s["speaker"] for s in a}), sorted({s["speaker"] for s in b})
    shared = np.zeros((len(la), len(lb)))
    for x in a:
        for y in b:
            shared[la.index(x["speaker"]), lb.index(y["speaker"])] += max(
                0.0, min(x["end"], y["end"]) - max(x["start"], y["start"])
            )
    rows, cols = linear_sum_assignment(-shared)
    return {la[r]: lb[c] for r, c in zip(rows, cols)}


def max_boundary_difference(a: list[dict], b: list[dict]) -> float:
    return max(
        (max(abs(x["start"] - y["start"]), abs(x["end"] - y["end"])) for x, y in zip(a, b)), default=0.0
    )


def diarize_attempts(stack: Stack, workflow_id: str):
    """The diarize activity's ActivityTaskStarted attributes in the video's history: one
    per scheduled activity, carrying the attempt that finished it and the failure of the
    attempt before (Temporal records retries there, not as events of their own)."""
    from temporalio.api.enums.v1 import EventType

    async def go():
        client = await connect(stack.settings())
        return [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]

    history = asyncio.run(go())
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    return [
        e.activity_task_started_event_attributes
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and scheduled[e.activity_task_started_event_attributes.scheduled_event_id] == "diarize_audio"
    ]


def test_kill_9_mid_diarization_resumes_from_checkpoint(stack, media_server, chunked_speech):
    """SIGKILL after 4 diarize chunks: another worker computes only the missing chunks
    (after the heartbeat timeout: a killed worker says nothing), and the result equals an
    undisturbed run of the same audio turn for turn (SEGMENT_TOLERANCE_S)."""
    name, duration = chunked_speech
    url = f"{media_server.url}/{name}"
    num_chunks = math.ceil(duration / float(CHUNK_S))
    store = store_of(stack)
    victim = worker(stack, "kill-a", "kill")
    start_videos(stack, "kill", "kill", [("long-killed", url)], heartbeat_timeout_s=5)
    wait_until(lambda: len(chunk_keys(store, "long-killed", "diarize")) >= 4, what="4 diarize chunks")
    victim.kill()
    victim.wait()
    killed_at = time.time()
    done_at_kill = len(chunk_keys(store, "long-killed", "diarize"))

    worker(stack, "kill-b", "kill")
    counts = wait_batch(stack, "kill", timeout_s=900)  # generous: a shared CPU
    assert counts.by_status == {"Completed": 1}

    redone = computed_chunks(stack, "kill-b", "video-long-killed", "diarize")
    assert sorted(redone) == list(range(done_at_kill, num_chunks)), "only the missing chunks are computed"
    (finished,) = diarize_attempts(stack, "video-long-killed")
    assert finished.attempt == 2 and finished.last_failure.HasField("timeout_failure_info"), (
        finished.last_failure
    )
    assert finished.last_failure.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    resumed = min(
        ts(e)
        for e in events(stack, "kill-b")
        if e.get("event") == "stage.started"
        and e.get("activity") == "diarize"
        and e.get("workflow_id") == "video-long-killed"
    )
    print(
        f"\nkill -9: {done_at_kill}/{num_chunks} chunks kept; resumed on the other worker "
        f"{resumed - killed_at:.1f} s after the kill (heartbeat timeout 5 s)"
    )

    # the same audio, undisturbed, gives the same outputs: the same turns (start, end,
    # speaker) within SEGMENT_TOLERANCE_S, the same speakers, the same usable share
    start_videos(stack, "kill", "kill-ref", [("long-undisturbed", url)], heartbeat_timeout_s=5)
    assert wait_batch(stack, "kill-ref", timeout_s=900).by_status == {"Completed": 1}
    killed = store.get_json(store.keys("long-killed").metadata)
    calm = store.get_json(store.keys("long-undisturbed").metadata)
    assert killed.keys() == calm.keys()
    assert killed["num_speakers"] == calm["num_speakers"] >= 2
    names = speaker_mapping(killed["segments"], calm["segments"])
    same = all(k == v for k, v in names.items())
    largest = max_boundary_difference(killed["segments"], calm["segments"])
    print(
        f"kill -9: {len(killed['segments'])} segments; labels "
        f"{'identical' if same else f'mapped by overlap {names}'}; largest boundary difference {largest:.4f} "
        "s"
    )
    assert len(killed["segments"]) == len(calm["segments"])
    for a, b in zip(killed["segments"], calm["segments"]):
        assert abs(a["start"] - b["start"]) <= SEGMENT_TOLERANCE_S, (a, b)
        assert abs(a["end"] - b["end"]) <= SEGMENT_TOLERANCE_S, (a, b)
        assert names[a["speaker"]] == b["speaker"], (a, b, names)
    assert abs(killed["usable_pct"] - calm["usable_pct"]) <= 0.5, (
        killed["usable_pct"],
        calm["usable_pct"],
    )  # measured equal
    for vid, meta in (("long-killed", killed), ("long-undisturbed", calm)):
        vectors = np.load(io.BytesIO(store.get_bytes(store.keys(vid).embeddings)))
        assert vectors.shape == (len(meta["segments"]), meta["embedding"]["dim"])
    assert stack.stop_process("kill-b") == 0


def test_sigterm_hands_over_at_a_chunk_boundary(stack, media_server, chunked_speech):
    """SIGTERM to the worker that holds diarize: the stage stops at its next chunk
    boundary with the retryable WorkerShutdown, the process exits 0, and the other worker
    resumes at once. "At once" is asserted by what happened, not by a clock: the history's
    finishing attempt is attempt 2, whose previous attempt failed WorkerShutdown (a
    heartbeat timeout would show there as a timeout failure), and the other worker's
    attempt started after the handover and kept the chunks already stored."""
    name, _ = chunked_speech
    store = store_of(stack)
    procs = {w: worker(stack, w, "term") for w in ("term-a", "term-b")}
    for w in procs:
        wait_for_event(stack, w, "worker.started")
    start_videos(stack, "term", "term", [("long-term", f"{media_server.url}/{name}")], heartbeat_timeout_s=30)
    wait_until(lambda: len(chunk_keys(store, "long-term", "diarize")) >= 2, what="2 diarize chunks")

    def diarize_starts(w: str) -> list[dict]:
        return [
            e
            for e in events(stack, w)
            if e.get("event") == "stage.started"
            and e.get("activity") == "diarize"
            and e.get("workflow_id") == "video-long-term"
        ]

    holder = next(w for w in procs if diarize_starts(w))
    other = next(w for w in procs if w != holder)
    sent = time.time()
    procs[holder].send_signal(signal.SIGTERM)
    assert procs[holder].wait(timeout=120) == 0
    exited = time.time() - sent
    assert wait_batch(stack, "term", timeout_s=900).by_status == {"Completed": 1}

    (finished,) = diarize_attempts(stack, "video-long-term")
    assert finished.attempt == 2, "one handover, then done"
    assert not finished.last_failure.HasField("timeout_failure_info"), f"timed out: {finished.last_failure}"
    assert finished.last_failure.application_failure_info.type == "WorkerShutdown", finished.last_failure

    handed = [
        e
        for e in events(stack, holder)
        if e.get("event") == "chunks.worker_shutdown"
        and e.get("activity") == "diarize"
        and e.get("workflow_id") == "video-long-term"
    ]
    assert len(handed) == 1, "the activity checkpointed and gave up its slot on SIGTERM"
    failed = [
        e
        for e in events(stack, holder)
        if e.get("event") == "stage.failed" and e.get("activity") == "diarize"
    ]
    assert [e["error_type"] for e in failed] == ["WorkerShutdown"]
    # the holder drained: every stage it started ended (done, or handed over) before it
    # exited, and it said so in order (was test_pipeline's drain test)
    ours = [e for e in events(stack, holder) if e.get("workflow_id") == "video-long-term"]
    ended = {
        e["activity"]: {"stage.done": "done", "stage.cancelled": "cancelled"}.get(
            e["event"], e.get("error_type")
        )
        for e in ours
        if e.get("event") in STAGE_ENDS
    }
    assert {e["activity"] for e in ours if e.get("event") == "stage.started"} == set(ended), ended
    assert all(outcome in ("done", "WorkerShutdown") for outcome in ended.values()), ended
    lifecycle = [
        e["event"] for e in events(stack, holder) if e.get("event") in ("worker.draining", "worker.stopped")
    ]
    assert lifecycle == ["worker.draining", "worker.stopped"]
    stats = store.get_json(store.keys("long-term").stats)
    assert stats["worker_ids"]["diarize"] == other and stats["attempts"]["diarize"] == 2

    resumed = diarize_starts(other)
    assert [e["attempt"] for e in resumed] == [2], "the other worker ran the retry"
    assert ts(resumed[0]) >= ts(handed[0]), "after the handover"
    redone = computed_chunks(stack, other, "video-long-term", "diarize")
    assert redone and min(redone) == handed[0]["chunk"], "resumed at the chunk the holder stopped before"
    print(
        f"\nSIGTERM: worker exited after {exited:.1f} s; diarization resumed on the other worker "
        f"{ts(resumed[0]) - sent:.1f} s after SIGTERM (heartbeat timeout 30 s)"
    )
    assert stack.stop_process(other) == 0


SHORT = ["ep03-three-voices.ogg", "ep05-radio-segment.ogg", "ep01-jingle-and-two-hosts.ogg"]


def count_connect_attempts(monkeypatch):
    """Count core.service.temporal.connect's attempts (refused or not) from here on; returns the
    counter. A spy, not a fake: it injects no fault, and the SDK's real Client.connect still
    does the work (the fault, a stopped server, is real)."""
    from temporalio.client import Client

    import core.service.temporal

    attempts = []

    class Counting:
        @staticmethod
        async def connect(*args, **kwargs):
            attempts.append(time.monotonic())
            return await Client.connect(*args, **kwargs)

    monkeypatch.setattr(core.service.temporal, "Client", Counting)
    return lambda: len(attempts)


def test_temporal_server_restart_mid_batch(own_stack, media_server, monkeypatch):
    stack = own_stack
    worker(stack, "restart-w", "restart")
    rows = [(f"restart-{i}", f"{media_server.url}/{f}") for i, f in enumerate(SHORT)]
    start_videos(stack, "restart", "restart", rows)
    wait_for_event(stack, "restart-w", "stage.started")
    stack.stop_process("temporal")
    refused = count_connect_attempts(monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        # a client started while the server is down waits for it instead of failing:
        # refused three times, it is still waiting (the event, not a number of seconds)
        waiting = pool.submit(asyncio.run, connect(stack.settings(), wait_s=60))
        wait_until(
            lambda: refused() >= 3 or waiting.done(), timeout_s=60, what="3 refused connection attempts"
        )
        assert not waiting.done(), waiting.exception()
        stack.start_temporal()
        client = waiting.result(timeout=60)
    assert client.namespace == stack.settings().temporal_namespace
    counts = wait_batch(stack, "restart")
    assert counts.by_status == {"Completed": len(rows)}
    store = store_of(stack)
    assert all(store.exists(store.keys(v).metadata) for v, _ in rows)
    assert stack.procs["restart-w"].poll() is None
    assert stack.stop_process("restart-w") == 0


def test_connect_gives_up_on_a_server_that_never_comes(stack, monkeypatch):
    """Refused, connect tries again (with backoff) until wait_s is spent, then fails
    TemporalUnavailable naming the address and wait_s: asserted by the number of
    attempts and the message; the seconds it took are printed."""
    address = f"127.0.0.1:{free_port()}"
    settings = stack.settings(temporal_address=address)
    attempts = count_connect_attempts(monkeypatch)
    began = time.monotonic()
    with pytest.raises(TemporalUnavailable, match="Connection refused") as refused:
        asyncio.run(connect(settings, wait_s=1.5))
    print(f"\nconnect gave up after {attempts()} attempts in {time.monotonic() - began:.1f} s (wait_s 1.5)")
    assert attempts() >= 3, (
        "retried, not failed at the first refusal"
    )  # backoff 0.2, 0.4, 0.8 s fits in 1.5 s
    assert f"Temporal at {address} did not answer within 1.5 s" in str(refused.value)


def test_storage_outage_mid_batch(own_stack, media_server):
    stack = own_stack
    worker(stack, "outage-w", "outage")
    rows = [(f"outage-{i}", f"{media_server.url}/{f}") for i, f in enumerate(SHORT)]
    start_videos(stack, "outage", "outage", rows)
    wait_for_event(stack, "outage-w", "stage.done")
    stack.stop_process("storage")
    wait_for_event(stack, "outage-w", "storage.unavailable_retrying", timeout_s=120)
    stack.start_storage()
    counts = wait_batch(stack, "outage")
    assert counts.by_status == {"Completed": len(rows)}
    waited = [e for e in events(stack, "outage-w") if e.get("event") == "storage.unavailable_retrying"]
    assert waited, "the outage was felt"
    failures = [e for e in events(stack, "outage-w") if e.get("error_type") == "StorageUnavailable"]
    assert not failures, "the stages rode the outage out: no attempt failed for it"
    store = store_of(stack)
    for vid, _ in rows:
        meta = store.get_json(store.keys(vid).metadata)
        assert meta["video_id"] == vid and store.exists(store.keys(vid).embeddings)
    assert stack.stop_process("outage-w") == 0


def test_worker_starts_through_a_storage_outage_and_refuses_rejected_credentials(stack, media_server):
    down = worker(stack, "nostore-w", "nostore", PIPELINE_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    # an S3 endpoint answering 403 to everything (the injected fault: a refused credential)
    refused = worker(stack, "refused-w", "refused", PIPELINE_S3_ENDPOINT_URL=f"{media_server.url}/status/403")
    assert refused.wait(timeout=60) == 2, "a refused credential is a setting to fix: exit 2, no retry loop"
    rejected = wait_for_event(stack, "refused-w", "worker.storage_rejected")
    assert "403" in rejected["error"] and "local" not in json.dumps(rejected), "no secret in the log"
    wait_for_event(stack, "nostore-w", "worker.storage_unavailable", timeout_s=120)
    wait_for_event(stack, "nostore-w", "worker.started")
    assert down.poll() is None, "an outage does not stop the worker: its stages retry until storage is back"
    assert stack.stop_process("nostore-w") == 0


def test_rate_limit_and_truncated_body_are_retried(stack, media_server):
    """A cut body is retried by the policy; a 429 makes the video wait and try again
    (video_waits times, spending no retry); a source that never stops answering 429
    fails the video RateLimited once its waits are spent."""
    worker(stack, "flaky-w", "flaky", PIPELINE_RATE_LIMIT_BACKOFF_S="2")
    rows = [
        ("flaky-429", f"{media_server.url}/flaky/429/1/ep05-radio-segment.ogg"),
        ("flaky-cut", f"{media_server.url}/flaky/truncated/3/ep05-radio-segment.ogg"),
        ("flaky-forever", f"{media_server.url}/flaky/429/1000/ep05-radio-segment.ogg"),
    ]
    breaker = SourceBreaker(video_wait_s=2, video_waits=1)
    start_videos(stack, "flaky", "flaky", rows, source_breaker=breaker)
    assert wait_batch(stack, "flaky").by_status == {"Completed": 2, "Failed": 1}
    gave_up = status_query(stack, "video-flaky-forever")
    assert gave_up["error_type"] == "RateLimited", gave_up
    store = store_of(stack)
    # the cut body is retried by the policy (attempt 2); the 429 makes the video wait
    # and download again in a new activity (attempt 1 again, no retry spent)
    assert store.get_json(store.keys("flaky-cut").stats)["attempts"]["download"] == 2
    downloads = [
        e
        for e in events(stack, "flaky-w")
        if e.get("event") == "stage.started"
        and e.get("activity") == "download"
        and e.get("workflow_id") == "video-flaky-429"
    ]
    assert [e["attempt"] for e in downloads] == [1, 1]
    forever = [
        e
        for e in events(stack, "flaky-w")
        if e.get("event") == "stage.started"
        and e.get("activity") == "download"
        and e.get("workflow_id") == "video-flaky-forever"
    ]
    assert [e["attempt"] for e in forever] == [1, 1], "one try, one wait, one more try: then failed"
    failed = {e["error_type"] for e in events(stack, "flaky-w") if e.get("event") == "stage.failed"}
    assert failed == {"RateLimited", "NetworkError"}
    assert stack.stop_process("flaky-w") == 0


def test_cuda_oom_halves_the_batch_until_it_fits(stack, media_server, chunked_speech):
    """A batch of more than 16 windows runs out of memory (injected fault): the long
    recording's 110 s in one 120 s chunk hold 41 segmentation windows, so 64 and 32 fail, 16 fits."""
    metrics = f"127.0.0.1:{free_port()}"
    worker(
        stack,
        "oom-w",
        "oom",
        PIPELINE_FAULT_OOM_ABOVE_BATCH="16",
        PIPELINE_SEGMENTATION_BATCH_SIZE="64",
        PIPELINE_CHUNK_S="120",
        PIPELINE_METRICS_ADDRESS=metrics,
    )
    start_videos(stack, "oom", "oom", [("oom-1", f"{media_server.url}/{chunked_speech[0]}")])
    assert wait_batch(stack, "oom").by_status == {"Completed": 1}
    stats = store_of(stack).get_json(store_of(stack).keys("oom-1").stats)
    assert stats["batch_sizes"]["diarize"] == [64, 32, 16]
    assert stats["oom_halvings"] >= 2 and stats["attempts"]["diarize"] == 3
    assert stats["escalations"] == []
    samples = scrape_metrics(metrics)
    assert metric_total(samples, "pipeline_cuda_oom_halvings_total") == stats["oom_halvings"]
    assert metric_total(samples, "pipeline_cuda_oom_halvings_total", stage="diarize") == 2
    failed = metric_total(
        samples, "pipeline_stage_failures_total", stage="diarize", error_type="CudaOutOfMemory"
    )
    assert failed == 2, "each halving fails the attempt; the retry runs with the smaller batch"
    print(
        f"\nOOM: diarize batch sizes {stats['batch_sizes']['diarize']}, embed {stats['batch_sizes']['embed']}"
    )
    assert stack.stop_process("oom-w") == 0


def test_oom_at_batch_1_escalates_to_the_next_gpu_class(stack, media_server):
    worker(
        stack,
        "esc-t4",
        "esc",
        PIPELINE_WORKER_GPU_CLASS="t4",
        PIPELINE_FAULT_OOM_ABOVE_BATCH="0",
        PIPELINE_SEGMENTATION_BATCH_SIZE="4",
    )
    worker(stack, "esc-a10", "esc", PIPELINE_WORKER_GPU_CLASS="a10", PIPELINE_SERVE_CPU_QUEUES="false")
    start_videos(
        stack, "esc", "esc", [("esc-1", f"{media_server.url}/ep05-radio-segment.ogg")], gpu_class="t4"
    )
    assert wait_batch(stack, "esc").by_status == {"Completed": 1}
    store = store_of(stack)
    stats = store.get_json(store.keys("esc-1").stats)
    assert stats["gpu_class"] == "a10"
    assert len(stats["escalations"]) == 1 and stats["escalations"][0].startswith("t4->a10")
    assert stats["worker_ids"]["diarize"] == "esc-a10"
    ooms = [e for e in events(stack, "esc-t4") if e.get("event") == "chunks.cuda_oom"]
    assert [e["next_batch_size"] for e in ooms if e["stage"] == "diarize"] == [2, 1, 0]
    assert {(e["video_id"], e["workflow_id"]) for e in ooms} == {("esc-1", "video-esc-1")}, (
        "log lines name the video"
    )
    for name in ("esc-t4", "esc-a10"):
        assert stack.stop_process(name) == 0


def wait_for_pollers(stack, prefix: str, gpu_class: str, timeout_s: float = 120) -> None:
    """Until the class's GPU queue has a poller, as the workflow's escalation asks Temporal."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from core.contracts import queues

    async def polled() -> bool:
        client = await connect(stack.settings())
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=queues.gpu_queue(prefix, gpu_class)),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            )
        )
        return bool(answer.pollers)

    wait_until(lambda: asyncio.run(polled()), timeout_s, f"a poller on {prefix}'s {gpu_class} queue")


def test_a_worker_short_of_memory_serves_fewer_slots_and_moves_the_video_up(stack, media_server):
    """Issue 31: a worker whose memory (here ``PIPELINE_MEMORY_LIMIT_MIB``, below what it
    holds once started: the fault) cannot hold its profile's slots serves fewer, and a
    model stage finding it past its guard fails HostMemoryExhausted before computing,
    instead of the kernel killing the worker: the video moves to the next larger class."""
    small = {"PIPELINE_SEGMENTATION_BATCH_SIZE": "2", "PIPELINE_EMBEDDING_BATCH_SIZE": "8"}
    worker(
        stack,
        "mem-a100",
        "mem",
        PIPELINE_WORKER_GPU_CLASS="a100-40",
        PIPELINE_MEMORY_LIMIT_MIB="300",
        **small,
    )
    worker(
        stack,
        "mem-a100-80",
        "mem",
        PIPELINE_WORKER_GPU_CLASS="a100-80",
        PIPELINE_SERVE_CPU_QUEUES="false",
        **small,
    )
    # the stage fails before any compute: the bigger class must be polled by then (the
    # workflow never moves a video to a queue nobody polls)
    wait_for_pollers(stack, "mem", "a100-80")
    start_videos(
        stack, "mem", "mem", [("mem-1", f"{media_server.url}/ep05-radio-segment.ogg")], gpu_class="a100-40"
    )
    assert wait_batch(stack, "mem").by_status == {"Completed": 1}, status_query(stack, "video-mem-1")
    store = store_of(stack)
    stats = store.get_json(store.keys("mem-1").stats)
    assert stats["gpu_class"] == "a100-80"
    assert len(stats["escalations"]) == 1 and stats["escalations"][0].startswith("a100-40->a100-80")
    assert "out of host memory" in stats["escalations"][0]
    assert stats["worker_ids"]["diarize"] == "mem-a100-80"
    logged = events(stack, "mem-a100")
    reduced = [e for e in logged if e.get("event") == "worker.slots_reduced"]
    assert reduced and reduced[0]["slots"] == 1 and reduced[0]["profile_slots"] == 2
    failed = [
        e for e in logged if e.get("event") == "stage.failed" and e.get("error_type") == "HostMemoryExhausted"
    ]
    assert failed and failed[0]["video_id"] == "mem-1"
    assert not [e for e in logged if e.get("event") == "chunk.computed"], "nothing computed past the guard"
    # every stage's summary carries the worker's memory while it ran
    assert all(peak > 100 for peak in stats["stage_peak_rss_mib"].values()), stats["stage_peak_rss_mib"]
    for name in ("mem-a100", "mem-a100-80"):
        assert stack.stop_process(name) == 0


def test_oom_at_batch_1_with_no_bigger_class_served_fails_at_once(stack, media_server):
    """Issue 22: on a T4-only fleet the video used to escalate to a10 and wait 12 hours
    on a queue nobody polls, holding its batch's window slot. The workflow now asks
    Temporal which classes have pollers first: none above t4, so NoWorkerForClass now."""
    worker(
        stack,
        "t4-only",
        "t4only",
        PIPELINE_WORKER_GPU_CLASS="t4",
        PIPELINE_FAULT_OOM_ABOVE_BATCH="0",
        PIPELINE_SEGMENTATION_BATCH_SIZE="2",
    )
    started = time.monotonic()
    start_videos(
        stack,
        "t4only",
        "t4only",
        [("t4only-1", f"{media_server.url}/ep05-radio-segment.ogg")],
        gpu_class="t4",
    )
    assert wait_batch(stack, "t4only").by_status == {"Failed": 1}
    took = time.monotonic() - started
    status = status_query(stack, "video-t4only-1")
    assert status["error_type"] == "NoWorkerForClass", status
    assert "out of GPU memory at batch 1 on t4" in status["error_message"], status
    assert status["gpu_class"] == "t4" and not status.get("escalations"), "never sent to an empty queue"
    print(f"\nT4-only fleet, OOM at batch 1: NoWorkerForClass after {took:.0f} s")
    assert took < 300, took
    assert stack.stop_process("t4-only") == 0


def test_oom_at_batch_1_on_the_largest_class_fails_typed(stack, media_server):
    """Out of memory at batch 1 on a100-80, the top of the ladder: nowhere to move, so the
    video fails GpuMemoryExhausted (visible in its status), having moved nowhere."""
    worker(
        stack,
        "top-w",
        "top",
        PIPELINE_WORKER_GPU_CLASS="a100-80",
        PIPELINE_FAULT_OOM_ABOVE_BATCH="0",
        PIPELINE_SEGMENTATION_BATCH_SIZE="2",
    )
    start_videos(
        stack, "top", "top", [("top-1", f"{media_server.url}/ep05-radio-segment.ogg")], gpu_class="a100-80"
    )
    assert wait_batch(stack, "top").by_status == {"Failed": 1}
    status = status_query(stack, "video-top-1")
    assert status["error_type"] == "GpuMemoryExhausted", status
    assert status["gpu_class"] == "a100-80" and not status.get("escalations"), status
    assert stack.stop_process("top-w") == 0


def test_a_model_stage_hung_in_native_code_frees_its_video_and_its_worker_leaves(stack, media_server):
    """Issue 22, "liveness means progress": the first chunk of a model stage on one
    worker waits in a native call that never returns (injected: as a hung CUDA kernel),
    while the process lives on. Its beats used to go on for the 3-hour timeout. Now:
    no progress for PIPELINE_STALL_S, the beats stop and the step is handed on; the
    thread cannot be stopped, so the worker reports itself unhealthy and exits 1 for its
    supervisor to restart it, and a healthy worker completes the video."""
    hung = worker(stack, "hang-w", "hang", PIPELINE_FAULT_HANG="model:native", PIPELINE_STALL_S="5")
    start_videos(
        stack,
        "hang",
        "hang",
        [("hang-1", f"{media_server.url}/ep05-radio-segment.ogg")],
        heartbeat_timeout_s=5,
    )
    stalled = wait_for_event(stack, "hang-w", "stage.stalled", timeout_s=180)
    worker(stack, "healthy-w", "hang")
    assert hung.wait(timeout=120) == 1, "the stuck worker leaves with exit code 1"
    unhealthy = wait_for_event(stack, "hang-w", "worker.unhealthy", timeout_s=5)
    assert "no progress for 5 s" in unhealthy["reason"], unhealthy
    assert wait_batch(stack, "hang").by_status == {"Completed": 1}
    stats = store_of(stack).get_json(store_of(stack).keys("hang-1").stats)
    print(
        f"\nhung model stage: stalled at {stalled.get('details')}, worker left; attempts {stats['attempts']}"
    )
    assert stack.stop_process("healthy-w") == 0
