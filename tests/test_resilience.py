"""Tests that kill things: real worker processes, real servers, real faults.

Each test uses its own task-queue prefix, so its workers only see its videos. Faults
are injected at the edges only: signals to real processes, a server stopped and
restarted, an HTTP server answering 429 or cutting a body short, and
``PIPELINE_FAULT_OOM_ABOVE_BATCH`` raising CUDA's OOM error inside the real batching
code (there is no GPU here).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
import pytest

from core.models import SourceBreaker
from core.storage import ObjectStore
from core.temporal import TemporalUnavailable, connect
from devstack.stack import Stack, StackConfig, free_port
from starter.batch import start_batch, wait_for_batch
from tests.conftest import EVAL, metric_total, scrape_metrics

pytestmark = pytest.mark.integration

CHUNK_S = "10"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, media_dir):
    stack = Stack(StackConfig.ephemeral(tmp_path_factory.mktemp("resilience"), media_dir))
    stack.start(worker=False)
    ObjectStore(stack.settings()).ensure_bucket()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def long_audio(media_dir) -> tuple[str, float]:
    """About four minutes of real speech: the eval recordings joined end to end."""
    name = "long-podcast.wav"
    files = sorted((EVAL / "diarization" / "audio").glob("*.wav"))
    listing = media_dir / "concat.txt"
    listing.write_text("".join(f"file '{f}'\n" for f in files))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
         "-i", str(listing), "-ac", "1", "-ar", "16000", str(media_dir / name)],
        check=True,
    )  # fmt: skip
    import soundfile as sf

    return name, sf.info(str(media_dir / name)).duration


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
    return stack.start_worker(name, **{"PIPELINE_TASK_QUEUE_PREFIX": prefix, "PIPELINE_CHUNK_S": CHUNK_S, **env})


def events(stack: Stack, name: str) -> list[dict]:
    """The JSON log lines of a worker (structlog events)."""
    out = []
    for line in (stack.logs / f"{name}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def wait_for_event(stack: Stack, name: str, event: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for e in events(stack, name):
            if e.get("event") == event:
                return e
        time.sleep(0.2)
    raise AssertionError(f"{name}: no {event} within {timeout_s} s")


def chunk_keys(store: ObjectStore, video_id: str, stage: str) -> list[str]:
    return [k for k in store.list_keys(f"{store.keys(video_id).work_root}{stage}/") if "/chunk-" in k]


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
        if e.get("event") == "chunk.computed" and e.get("stage") == stage and e.get("workflow_id") == workflow_id
    ]


def test_kill_9_mid_diarization_resumes_from_checkpoint(stack, media_server, long_audio):
    name, duration = long_audio
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
    counts = wait_batch(stack, "kill")
    assert counts.by_status == {"Completed": 1}

    redone = computed_chunks(stack, "kill-b", "video-long-killed", "diarize")
    assert sorted(redone) == list(range(done_at_kill, num_chunks)), "only the missing chunks are computed"
    resumed = min(
        ts(e) for e in events(stack, "kill-b")
        if e.get("event") == "stage.started" and e.get("activity") == "diarize"
        and e.get("workflow_id") == "video-long-killed"
    )  # fmt: skip
    print(f"\nkill -9: {done_at_kill}/{num_chunks} chunks kept; resumed on the other worker "
          f"{resumed - killed_at:.1f} s after the kill (heartbeat timeout 5 s)")  # fmt: skip

    # the same audio, undisturbed, gives outputs of identical structure
    start_videos(stack, "kill", "kill-ref", [("long-undisturbed", url)], heartbeat_timeout_s=5)
    assert wait_batch(stack, "kill-ref").by_status == {"Completed": 1}
    killed = store.get_json(store.keys("long-killed").metadata)
    calm = store.get_json(store.keys("long-undisturbed").metadata)
    assert killed.keys() == calm.keys()
    assert [sorted(s) for s in killed["segments"]] == [sorted(s) for s in calm["segments"]]
    assert killed["duration_s"] == calm["duration_s"] and killed["num_speakers"] >= 2
    for vid, meta in (("long-killed", killed), ("long-undisturbed", calm)):
        vectors = np.load(io.BytesIO(store.get_bytes(store.keys(vid).embeddings)))
        assert vectors.shape == (len(meta["segments"]), meta["embedding"]["dim"])
    assert stack.stop_process("kill-b") == 0


def test_sigterm_hands_over_within_seconds(stack, media_server, long_audio):
    name, _ = long_audio
    store = store_of(stack)
    procs = {w: worker(stack, w, "term") for w in ("term-a", "term-b")}
    for w in procs:
        wait_for_event(stack, w, "worker.started")
    start_videos(stack, "term", "term", [("long-term", f"{media_server.url}/{name}")], heartbeat_timeout_s=30)
    wait_until(lambda: len(chunk_keys(store, "long-term", "diarize")) >= 2, what="2 diarize chunks")

    def diarize_starts(w: str) -> list[float]:
        return [
            ts(e) for e in events(stack, w)
            if e.get("event") == "stage.started" and e.get("activity") == "diarize"
            and e.get("workflow_id") == "video-long-term"
        ]  # fmt: skip

    holder = next(w for w in procs if diarize_starts(w))
    other = next(w for w in procs if w != holder)
    sent = time.time()
    procs[holder].send_signal(signal.SIGTERM)
    assert procs[holder].wait(timeout=30) == 0
    exited = time.time() - sent
    assert wait_batch(stack, "term").by_status == {"Completed": 1}

    handed = [e for e in events(stack, holder) if e.get("event") == "chunks.worker_shutdown"]
    assert handed, "the activity checkpointed and gave up its slot on SIGTERM"
    resumed = min(t for t in diarize_starts(other) if t > sent)
    print(f"\nSIGTERM: worker exited after {exited:.1f} s; diarization resumed on the other worker "
          f"{resumed - sent:.1f} s after SIGTERM (heartbeat timeout 30 s)")  # fmt: skip
    assert resumed - sent < 15, "handover is immediate, not the heartbeat timeout"
    assert stack.stop_process(other) == 0


SHORT = ["ep03-three-voices.ogg", "ep05-radio-segment.ogg", "ep01-jingle-and-two-hosts.ogg"]


def test_temporal_server_restart_mid_batch(stack, media_server):
    worker(stack, "restart-w", "restart")
    rows = [(f"restart-{i}", f"{media_server.url}/{f}") for i, f in enumerate(SHORT)]
    start_videos(stack, "restart", "restart", rows)
    wait_for_event(stack, "restart-w", "stage.started")
    stack.stop_process("temporal")
    with ThreadPoolExecutor(1) as pool:
        # a client started while the server is down waits for it instead of failing
        waiting = pool.submit(asyncio.run, connect(stack.settings(), wait_s=60))
        time.sleep(3)
        assert not waiting.done()
        stack.start_temporal()
        client = waiting.result(timeout=60)
    assert client.namespace == stack.settings().temporal_namespace
    counts = wait_batch(stack, "restart")
    assert counts.by_status == {"Completed": len(rows)}
    store = store_of(stack)
    assert all(store.exists(store.keys(v).metadata) for v, _ in rows)
    assert stack.procs["restart-w"].poll() is None
    assert stack.stop_process("restart-w") == 0


def test_connect_gives_up_on_a_server_that_never_comes(stack):
    settings = stack.settings(temporal_address=f"127.0.0.1:{free_port()}")
    began = time.monotonic()
    with pytest.raises(TemporalUnavailable, match="Connection refused"):
        asyncio.run(connect(settings, wait_s=1.5))
    assert 1.0 < time.monotonic() - began < 10, "retried for about wait_s, then gave up"


def test_storage_outage_mid_batch(stack, media_server):
    worker(stack, "outage-w", "outage")
    rows = [(f"outage-{i}", f"{media_server.url}/{f}") for i, f in enumerate(SHORT)]
    start_videos(stack, "outage", "outage", rows)
    wait_for_event(stack, "outage-w", "stage.done")
    stack.stop_process("storage")
    time.sleep(20)
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
    worker(stack, "flaky-w", "flaky", PIPELINE_RATE_LIMIT_BACKOFF_S="2")
    rows = [
        ("flaky-429", f"{media_server.url}/flaky/429/1/ep05-radio-segment.ogg"),
        ("flaky-cut", f"{media_server.url}/flaky/truncated/3/ep05-radio-segment.ogg"),
    ]
    start_videos(stack, "flaky", "flaky", rows, source_breaker=SourceBreaker(video_wait_s=2))
    assert wait_batch(stack, "flaky").by_status == {"Completed": 2}
    store = store_of(stack)
    # the cut body is retried by the policy (attempt 2); the 429 makes the video wait
    # and download again in a new activity (attempt 1 again, no retry spent)
    assert store.get_json(store.keys("flaky-cut").stats)["attempts"]["download"] == 2
    downloads = [e for e in events(stack, "flaky-w") if e.get("event") == "stage.started"
                 and e.get("activity") == "download" and e.get("workflow_id") == "video-flaky-429"]  # fmt: skip
    assert [e["attempt"] for e in downloads] == [1, 1]
    failed = {e["error_type"] for e in events(stack, "flaky-w") if e.get("event") == "stage.failed"}
    assert failed == {"RateLimited", "NetworkError"}
    assert stack.stop_process("flaky-w") == 0


def test_cuda_oom_halves_the_batch_until_it_fits(stack, media_server, long_audio):
    """A batch of more than 16 windows runs out of memory (injected fault): the long
    recording's 120 s chunks hold 48 segmentation windows, so 64 and 32 fail, 16 fits."""
    metrics = f"127.0.0.1:{free_port()}"
    worker(stack, "oom-w", "oom", PIPELINE_FAULT_OOM_ABOVE_BATCH="16", PIPELINE_SEGMENTATION_BATCH_SIZE="64",
           PIPELINE_CHUNK_S="120", PIPELINE_METRICS_ADDRESS=metrics)  # fmt: skip
    start_videos(stack, "oom", "oom", [("oom-1", f"{media_server.url}/{long_audio[0]}")])
    assert wait_batch(stack, "oom").by_status == {"Completed": 1}
    stats = store_of(stack).get_json(store_of(stack).keys("oom-1").stats)
    assert stats["batch_sizes"]["diarize"] == [64, 32, 16]
    assert stats["oom_halvings"] >= 2 and stats["attempts"]["diarize"] == 3
    assert stats["escalations"] == []
    samples = scrape_metrics(metrics)
    assert metric_total(samples, "pipeline_cuda_oom_halvings_total") == stats["oom_halvings"]
    assert metric_total(samples, "pipeline_cuda_oom_halvings_total", stage="diarize") == 2
    failed = metric_total(samples, "pipeline_stage_failures_total", stage="diarize", error_type="CudaOutOfMemory")
    assert failed == 2, "each halving fails the attempt; the retry runs with the smaller batch"
    print(f"\nOOM: diarize batch sizes {stats['batch_sizes']['diarize']}, embed {stats['batch_sizes']['embed']}")
    assert stack.stop_process("oom-w") == 0


def test_oom_at_batch_1_escalates_to_the_next_gpu_class(stack, media_server):
    worker(stack, "esc-t4", "esc", PIPELINE_WORKER_GPU_CLASS="t4", PIPELINE_FAULT_OOM_ABOVE_BATCH="0",
           PIPELINE_SEGMENTATION_BATCH_SIZE="4")  # fmt: skip
    worker(stack, "esc-a10", "esc", PIPELINE_WORKER_GPU_CLASS="a10", PIPELINE_SERVE_CPU_QUEUES="false")
    start_videos(stack, "esc", "esc", [("esc-1", f"{media_server.url}/ep05-radio-segment.ogg")], gpu_class="t4")
    assert wait_batch(stack, "esc").by_status == {"Completed": 1}
    store = store_of(stack)
    stats = store.get_json(store.keys("esc-1").stats)
    assert stats["gpu_class"] == "a10"
    assert len(stats["escalations"]) == 1 and stats["escalations"][0].startswith("t4->a10")
    assert stats["worker_ids"]["diarize"] == "esc-a10"
    ooms = [e for e in events(stack, "esc-t4") if e.get("event") == "chunks.cuda_oom"]
    assert [e["next_batch_size"] for e in ooms if e["stage"] == "diarize"] == [2, 1, 0]
    assert {(e["video_id"], e["workflow_id"]) for e in ooms} == {("esc-1", "video-esc-1")}, "log lines name the video"
    for name in ("esc-t4", "esc-a10"):
        assert stack.stop_process(name) == 0
