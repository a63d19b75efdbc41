"""Long steps, paused workers and late writers, on a real stack (issue 12).

Real Temporal, real storage, real worker processes. Faults are injected at the edges:
a source that trickles its file (the media server's /slow/ path), named steps held by
``PIPELINE_FAULT_STALL_S`` (a slow disk, GPU or link), SIGSTOP/SIGCONT to a worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter

import pytest
from temporalio.client import WorkflowFailureError

from activities.scratch import LEGACY_SCRATCH_PREFIX, SCRATCH_PREFIX, process_identity
from core.contracts import queues
from core.contracts.errors import StoreUnsafe
from core.contracts.video import VideoJob, VideoSpec
from core.service.temporal import connect
from core.store.objects import ObjectStore
from tests.conftest import run_cli
from tests.fleet import (
    chunk_keys,
    events,
    stages_ended,
    start_videos,
    store_of,
    wait_batch,
    wait_for_event,
    wait_until,
    worker,
)
from tests.s3_proxy import IgnoresIfNoneMatch

pytestmark = pytest.mark.integration

STEP_S = 7  # longer than the heartbeat timeout (5 s), so a step that stopped beating would fail


def stage_events(stack, name: str, workflow_id: str, event: str) -> list[dict]:
    return [e for e in events(stack, name) if e.get("event") == event and e.get("workflow_id") == workflow_id]


def test_steps_longer_than_the_heartbeat_timeout_run_once(stack, media_server):
    """Heartbeat timeout 5 s; every step takes at least STEP_S: the download (the source
    trickles the file over STEP_S), each transcode, the model call, the clustering and the
    commit (held by PIPELINE_FAULT_STALL_S). Each stage starts exactly once."""
    name = "slow"
    stall = f"transcode={STEP_S},model={STEP_S},cluster={STEP_S},commit={STEP_S}"
    worker(stack, name, name, PIPELINE_FAULT_STALL_S=stall, PIPELINE_CHUNK_S="100000")
    url = f"{media_server.url}/slow/{STEP_S}/ep03-three-voices.ogg"
    start_videos(stack, name, name, [("slow-steps", url)], heartbeat_timeout_s=5)
    assert wait_batch(stack, name, timeout_s=600).by_status == {"Completed": 1}

    started = Counter(e["activity"] for e in stage_events(stack, name, "video-slow-steps", "stage.started"))
    seconds = {
        e["activity"]: e["seconds"] for e in stage_events(stack, name, "video-slow-steps", "stage.done")
    }
    print(f"\nslow steps (heartbeat timeout 5 s): attempts {dict(started)}, seconds {seconds}")
    assert started == {
        "committed_video": 1,
        "download": 1,
        "diarize": 1,
        "music": 1,
        "embed": 1,
        "labels": 1,
        "commit": 1,
    }
    assert seconds["download"] >= 3 * STEP_S, "fetch + two transcodes, each at least STEP_S"
    assert seconds["diarize"] >= 2 * STEP_S, "the model call and the clustering"
    assert min(seconds["music"], seconds["embed"], seconds["labels"], seconds["commit"]) >= STEP_S
    assert not [e for e in events(stack, name) if e.get("event") in {"stage.cancelled", "stage.failed"}]
    assert stack.stop_process(name) == 0


def test_a_paused_worker_wakes_up_late_and_changes_nothing(stack, media_server, chunked_speech):
    """A recording of many chunks; SIGSTOP past the heartbeat timeout mid-diarization;
    another worker finishes and commits the video; SIGCONT: the late attempt is told it
    was given up and stops, and neither the committed files nor _work/ show any trace
    of it."""
    audio_name, duration = chunked_speech
    store = store_of(stack)
    keys = store.keys("paused")
    sleeper = worker(stack, "pause-a", "pause")
    start_videos(
        stack, "pause", "pause", [("paused", f"{media_server.url}/{audio_name}")], heartbeat_timeout_s=5
    )
    wait_until(lambda: len(chunk_keys(store, "paused", "diarize")) >= 2, what="2 diarize chunks")
    os.kill(sleeper.pid, signal.SIGSTOP)
    try:
        worker(stack, "pause-b", "pause")
        assert wait_batch(stack, "pause", timeout_s=600).by_status == {"Completed": 1}
        committed = {k: store.get_bytes(k) for k in store.list_keys(keys.root)}
    finally:
        os.kill(sleeper.pid, signal.SIGCONT)
    # music may have been in flight beside diarize; each late attempt reports on its own
    wait_until(
        lambda: any(
            e["activity"] == "diarize"
            for e in stage_events(stack, "pause-a", "video-paused", "stage.cancelled")
        ),
        timeout_s=60,
        what="the paused diarize attempt to stop",
    )
    ended = next(
        e
        for e in stage_events(stack, "pause-a", "video-paused", "stage.cancelled")
        if e["activity"] == "diarize"
    )
    print(f"\npaused worker: its diarize attempt ended with {ended.get('reason')} after SIGCONT")
    # every stage the paused worker had begun has ended (music may have been in flight
    # beside diarize): nothing of the late attempts is still on its way to storage
    wait_until(
        lambda: stages_ended(stack, "pause-a", "video-paused"), timeout_s=60, what="the late attempts' ends"
    )
    assert {k: store.get_bytes(k) for k in store.list_keys(keys.root)} == committed
    assert store.list_keys(keys.work_root) == [], "the late attempt resurrected no intermediate"
    meta = store.get_json(keys.metadata)
    assert all(store.sha256(f"{keys.root}{n}")[0] == sha for n, sha in meta["files"].items())
    assert (
        abs(meta["duration_s"] - duration) < 0.1 and meta["num_speakers"] >= 2 and len(meta["segments"]) > 20
    )
    for name in ("pause-a", "pause-b"):
        assert stack.stop_process(name) == 0


def test_sigterm_during_an_unchunked_step_hands_it_over(stack, media_server):
    """SIGTERM while the download (one step, no chunks) is held in its transcode: the
    worker drains for PIPELINE_GRACEFUL_SHUTDOWN_S, then the SDK cancels the attempt,
    which stops; the worker exits 0 and another worker downloads the video again."""
    leaving = worker(
        stack, "term-a", "unchunked", PIPELINE_FAULT_STALL_S="transcode=600", PIPELINE_GRACEFUL_SHUTDOWN_S="2"
    )
    wait_for_event(stack, "term-a", "worker.started")
    start_videos(
        stack, "unchunked", "unchunked", [("unchunked", f"{media_server.url}/ep03-three-voices.ogg")]
    )
    wait_for_event(stack, "term-a", "stage.started", timeout_s=120)
    wait_until(
        lambda: any(
            e.get("activity") == "download"
            for e in stage_events(stack, "term-a", "video-unchunked", "stage.started")
        ),
        what="the download on term-a",
    )
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=120) == 0
    stopped = stage_events(stack, "term-a", "video-unchunked", "stage.cancelled")
    assert [e["activity"] for e in stopped] == ["download"] and "worker_shutdown" in stopped[0]["reason"]
    worker(stack, "term-b", "unchunked")
    assert wait_batch(stack, "unchunked", timeout_s=300).by_status == {"Completed": 1}
    redone = stage_events(stack, "term-b", "video-unchunked", "stage.started")
    assert [e["attempt"] for e in redone if e["activity"] == "download"] == [2]
    assert stack.stop_process("term-b") == 0


def test_a_worker_paused_mid_finalize_commits_once(stack, media_server):
    """SIGSTOP while the commit (a local activity of the workflow worker) is held: the
    workflow task times out, another worker replays the workflow and commits; SIGCONT:
    the paused commit ends and rewrites nothing. It ends one of two ways, depending on
    whether the woken worker's SDK learns first that its workflow moved on (it cancels
    the local activity) or the held step runs out first (the commit finds the video
    committed): both must leave the committed files untouched."""
    store = store_of(stack)
    keys = store.keys("finalize-paused")
    sleeper = worker(stack, "fin-a", "fin", PIPELINE_FAULT_STALL_S="commit=20")
    start_videos(stack, "fin", "fin", [("finalize-paused", f"{media_server.url}/ep03-three-voices.ogg")])
    wait_until(
        lambda: any(
            e.get("activity") == "commit"
            for e in stage_events(stack, "fin-a", "video-finalize-paused", "stage.started")
        ),
        timeout_s=300,
        what="the commit on fin-a",
    )
    os.kill(sleeper.pid, signal.SIGSTOP)
    try:
        worker(stack, "fin-b", "fin")
        assert wait_batch(stack, "fin", timeout_s=300).by_status == {"Completed": 1}
        committed = {k: store.get_bytes(k) for k in store.list_keys(keys.root)}
    finally:
        os.kill(sleeper.pid, signal.SIGCONT)
    wait_until(
        lambda: late_commit_ended(stack, "fin-a", "video-finalize-paused"),
        timeout_s=120,
        what="the paused commit's end on fin-a",
    )
    assert late_commit_ended(stack, "fin-a", "video-finalize-paused") in {
        "commit.already_committed",
        "stage.cancelled",
    }, events(stack, "fin-a")[-20:]
    assert {k: store.get_bytes(k) for k in store.list_keys(keys.root)} == committed
    meta = store.get_json(keys.metadata)
    assert all(store.sha256(f"{keys.root}{n}")[0] == sha for n, sha in meta["files"].items())
    assert store.list_keys(keys.work_root) == []
    for name in ("fin-a", "fin-b"):
        assert stack.stop_process(name) == 0


def late_commit_ended(stack, name: str, workflow_id: str) -> str | None:
    """How a worker's commit of ``workflow_id`` ended: the first of its
    ``commit.already_committed`` or its commit stage's end event, None while it runs."""
    for e in events(stack, name):
        if e.get("workflow_id") != workflow_id:
            continue
        if e.get("event") == "commit.already_committed":
            return e["event"]
        if e.get("activity") == "commit" and e.get("event") in {
            "stage.done",
            "stage.failed",
            "stage.cancelled",
        }:
            return e["event"]
    return None


def test_a_class_nobody_serves_fails_typed_after_the_queue_timeout(stack, media_server):
    """No worker polls the a100-80 queue: the video fails NoWorkerForClass, naming the
    queue, instead of waiting forever."""
    worker(stack, "unserved", "unserved")
    settings = stack.settings()
    spec = VideoSpec(video_id="unserved", url=f"{media_server.url}/ep03-three-voices.ogg")
    job = VideoJob(spec=spec, queue_prefix="unserved", gpu_class="a100-80", queue_timeout_s=3)

    async def go():
        client = await connect(settings)
        handle = await client.start_workflow(
            "VideoWorkflow", job, id="video-unserved", task_queue=queues.workflow_queue("unserved")
        )
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 180)
        return info.value.cause

    cause = asyncio.run(go())
    assert cause.type == "NoWorkerForClass"
    assert "unserved-gpu-a100-80" in cause.message
    assert cause.message.split(":")[0] in {"diarize", "music"}, "names the stage that waited"
    assert stack.stop_process("unserved") == 0


def test_worker_sweeps_scratch_left_by_a_killed_worker(stack, tmp_path):
    """A kill skips the scratch cleanup: the next worker on the machine removes folders
    of dead processes and leaves those of live ones. A dead worker's PID may belong to
    a live process again (a restarted container numbers its worker alike): its folder
    is still swept, since the process identity has the start time (issue 22)."""
    work = tmp_path / "scratch"
    me = process_identity(os.getpid())
    boot, pid, start = me.split(".")
    dead = subprocess_pid_that_exited()
    stale = [
        work / f"{LEGACY_SCRATCH_PREFIX}{dead}-vid-abc",  # named by PID alone (before)
        work / f"{SCRATCH_PREFIX}{boot}.{pid}.{int(start) - 1}-vid-reused",  # this PID, another process
        work / f"{SCRATCH_PREFIX}00000000.{pid}.{start}-vid-lastboot",  # before a reboot
    ]
    live = work / f"{SCRATCH_PREFIX}{me}-vid-def"
    for folder in [*stale, live]:
        folder.mkdir(parents=True)
        (folder / "original.wav").write_bytes(b"\0" * 1024)
    worker(stack, "sweeper", "sweep", PIPELINE_WORK_DIR=str(work))
    swept = wait_for_event(stack, "sweeper", "worker.scratch_swept")
    assert sorted(swept["folders"]) == sorted(folder.name for folder in stale)
    assert not any(folder.exists() for folder in stale) and live.exists()
    wait_for_event(stack, "sweeper", "worker.started")
    assert stack.stop_process("sweeper") == 0


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_worker_and_starter_refuse_a_store_that_ignores_if_none_match(stack, media_server):
    """The store is real; a proxy in front of it drops If-None-Match (tests/s3_proxy.py)."""
    with IgnoresIfNoneMatch(stack.config.s3_port) as proxy:
        with pytest.raises(StoreUnsafe):
            ObjectStore(stack.settings(s3_endpoint_url=proxy.url)).check_conditional_writes()
        ObjectStore(stack.settings()).check_conditional_writes()  # the same store, asked directly
        proc = worker(stack, "unsafe", "unsafe", PIPELINE_S3_ENDPOINT_URL=proxy.url)
        assert proc.wait(timeout=120) == 2
        refused = wait_for_event(stack, "unsafe", "worker.storage_unsafe")
        assert "If-None-Match" in refused["error"]
        csv_path = stack.config.data_dir / "unsafe.csv"
        csv_path.write_text(f"video_id,url\nunsafe-1,{media_server.url}/ep03-three-voices.ogg\n")
        env = {k: str(v) for k, v in stack.env().items()} | {"PIPELINE_S3_ENDPOINT_URL": proxy.url}
        started = run_cli("-m", "starter", "start", "--csv", str(csv_path), "--batch-id", "unsafe", env=env)
    assert started.returncode == 2
    assert (
        started.stderr.strip().splitlines()[-1].startswith("error: storage")
        and "If-None-Match" in started.stderr
    )


def test_an_id_committed_for_another_url_is_a_visible_conflict(stack, media_server):
    worker(stack, "conflict", "conflict")
    start_videos(stack, "conflict", "conflict-1", [("reused", f"{media_server.url}/ep03-three-voices.ogg")])
    assert wait_batch(stack, "conflict-1").by_status == {"Completed": 1}
    start_videos(stack, "conflict", "conflict-2", [("reused", f"{media_server.url}/ep05-radio-segment.ogg")])
    counts = wait_batch(stack, "conflict-2")
    assert counts.by_status == {"Failed": 1}
    status = run_cli("-m", "starter", "status", "--batch-id", "conflict-2", env=stack.env())
    assert "VideoIdConflict" in status.stdout, status.stdout
    meta = store_of(stack).get_json(store_of(stack).keys("reused").metadata)
    assert meta["source"]["url"].endswith("ep03-three-voices.ogg"), "the commit is untouched"
    assert stack.stop_process("conflict") == 0
