"""BatchWorkflow on the embedded stack: sliding window across continue-as-new, one run
per video across batches, pause/resume, cancel, retry-failed, stats, dry run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from core.storage import ObjectStore
from core.temporal import connect
from devstack.stack import Stack, StackConfig
from starter.batch import batch_counts, batch_progress, list_videos, start_batch, wait_for_batch
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

SHORT = "ep05-radio-segment.ogg"  # 8 s


@pytest.fixture(scope="module")
def stack(tmp_path_factory, media_dir):
    stack = Stack(StackConfig.ephemeral(tmp_path_factory.mktemp("batches"), media_dir))
    stack.start(worker=False)
    stack.start_worker("batch-worker")
    yield stack
    stack.stop()


def write_csv(stack: Stack, name: str, rows: list[tuple[str, str]]):
    path = stack.config.data_dir / f"{name}.csv"
    path.write_text("video_id,url\n" + "".join(f"{v},{stack.media_url}/{f}\n" for v, f in rows))
    return path


async def started(handle, timeout_s: float = 10.0) -> None:
    """Wait until the batch has started this video's workflow."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await handle.describe()
            return
        except RPCError:
            assert time.monotonic() < deadline, f"{handle.id} never started"
            await asyncio.sleep(0.1)


def run(coro):
    return asyncio.run(coro)


async def client_of(stack):
    return await connect(stack.settings())


def test_sliding_window_survives_continue_as_new(stack):
    rows = [(f"win-{i}", SHORT) for i in range(6)]
    csv_path = write_csv(stack, "win", rows)

    async def go():
        client = await client_of(stack)
        report = await start_batch(client, stack.settings(), csv_path, "win", window=2, max_events_per_run=30)
        assert report.submitted and report.valid == 6
        peak = 0
        while True:
            desc = await client.get_workflow_handle("batch-win").describe()
            try:
                progress = await batch_progress(client, "win")
                peak = max(peak, progress.running)
            except Exception:
                pass  # between runs of continue-as-new
            if desc.status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.3)
        return peak, await batch_progress(client, "win")

    peak, progress = run(go())
    assert peak <= 2, "never more than the window in flight"
    assert progress.runs >= 2, "the batch continued as new at least once"
    assert (progress.completed, progress.failed, progress.total) == (6, 0, 6)
    assert progress.per_class["cpu"].videos == 6 and progress.audio_h_per_h_overall > 0
    store = ObjectStore(stack.settings())
    assert all(store.exists(store.keys(v).metadata) for v, _ in rows)


def test_same_video_in_two_batches_runs_once(stack):
    a = write_csv(stack, "two-a", [("both-1", SHORT), ("both-2", SHORT)])
    b = write_csv(stack, "two-b", [("both-2", SHORT), ("both-3", SHORT)])

    async def go():
        client = await client_of(stack)
        await asyncio.gather(
            start_batch(client, stack.settings(), a, "two-a"), start_batch(client, stack.settings(), b, "two-b")
        )
        await wait_for_batch(client, "two-a")
        await wait_for_batch(client, "two-b")
        return await batch_progress(client, "two-a"), await batch_progress(client, "two-b")

    pa, pb = run(go())
    assert pa.completed + pb.completed == 3, "three distinct videos, each processed once"
    assert pa.not_started + pb.not_started == 1  # running in the other batch (or already done there)
    store = ObjectStore(stack.settings())
    assert store.list_keys(store.keys("both-2").root).count(store.keys("both-2").metadata) == 1


def test_pause_and_resume(stack):
    rows = [(f"pause-{i}", SHORT) for i in range(3)]
    csv_path = write_csv(stack, "pause", rows)

    async def go():
        client = await client_of(stack)
        await start_batch(client, stack.settings(), csv_path, "pause", window=1)
        handle = client.get_workflow_handle("batch-pause")
        await handle.signal("pause")
        await asyncio.sleep(15)  # long enough for the first video to finish
        frozen = await batch_progress(client, "pause")
        await asyncio.sleep(3)
        still = await batch_progress(client, "pause")
        await handle.signal("resume")
        await wait_for_batch(client, "pause")
        return frozen, still, await batch_progress(client, "pause")

    frozen, still, final = run(go())
    assert frozen.paused and frozen.running == 0 and frozen.done <= 1
    assert still.done == frozen.done, "nothing new starts while paused"
    assert final.completed == 3 and not final.paused


def long_media(stack: Stack) -> str:
    """~3.5 min of real speech and music: still running when the test acts on it."""
    name = "batch-long.wav"
    if not (stack.config.media_dir / name).exists():
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "4", "-i",
             str(stack.config.media_dir / "ep01-jingle-and-two-hosts.ogg"), "-ac", "1", "-ar", "16000",
             str(stack.config.media_dir / name)],
            check=True,
        )  # fmt: skip
    return name


def test_cancel_stops_the_batch_and_its_running_video(stack):
    long_name = long_media(stack)
    rows = [(f"cancel-{i}", long_name) for i in range(3)]
    result = run_cli("-m", "starter", "start", "--csv", str(write_csv(stack, "cancel", rows)),
                     "--batch-id", "cancel", "--window", "1", env=stack.env())  # fmt: skip
    assert result.returncode == 0, result.stderr

    async def go():
        client = await client_of(stack)
        handle = client.get_workflow_handle("video-cancel-0")
        await started(handle)
        status = run_cli("-m", "starter", "status", "--batch-id", "cancel", "--videos", env=stack.env())
        line = next(x for x in status.stdout.splitlines() if x.startswith("cancel-0 "))
        assert line.split()[1:] in (["running", f"stage={s}"] for s in ("download", "diarize+music", "diarize",
                                                                          "music", "embed")), status.stdout
        cancel = run_cli("-m", "starter", "cancel", "--batch-id", "cancel", env=stack.env())
        assert cancel.returncode == 0 and "cancel sent" in cancel.stdout
        for _ in range(100):
            batch = await client.get_workflow_handle("batch-cancel").describe()
            video = await handle.describe()
            if batch.status != WorkflowExecutionStatus.RUNNING and video.status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.2)
        return batch.status, video.status, await batch_counts(client, "cancel")

    batch_status, video_status, counts = run(go())
    assert (batch_status, video_status) == (WorkflowExecutionStatus.CANCELED, WorkflowExecutionStatus.CANCELED)
    assert counts.total == 1, "the videos after the window were never started"


def test_a_video_terminated_by_hand_frees_its_slot(stack):
    rows = [("recon-0", long_media(stack)), ("recon-1", SHORT)]
    csv_path = write_csv(stack, "recon", rows)

    async def go():
        client = await client_of(stack)
        await start_batch(client, stack.settings(), csv_path, "recon", window=1, reconcile_s=2)
        handle = client.get_workflow_handle("video-recon-0")
        await started(handle)
        await handle.terminate(reason="operator test")
        await wait_for_batch(client, "recon", timeout_s=120)
        return await batch_progress(client, "recon")

    progress = run(go())
    assert progress.failed == 1 and progress.failed_by_error == {"WorkflowTerminated": 1}
    assert progress.completed == 1, "the next video got the freed slot"


def test_retry_failed_by_error_type(stack):
    rows = [("retry-ok", SHORT), ("retry-silent", "silent.wav"), ("retry-gone", "status/404/gone.ogg")]
    csv_path = write_csv(stack, "retry", rows)
    first = run_cli("-m", "starter", "start", "--csv", str(csv_path), "--batch-id", "retry", "--wait",
                    env=stack.env(), timeout=300)  # fmt: skip
    assert "summary: 1 completed, 2 failed" in first.stdout, first.stdout + first.stderr
    retry = run_cli("-m", "starter", "retry-failed", "--batch-id", "retry", "--error-type", "SilentAudio",
                    "--wait", env=stack.env(), timeout=300)  # fmt: skip
    assert "retrying 1 failed videos" in retry.stdout, retry.stdout + retry.stderr

    async def go():
        client = await client_of(stack)
        runs = [wf async for wf in client.list_workflows('WorkflowId = "video-retry-silent"')]
        gone = [wf async for wf in client.list_workflows('WorkflowId = "video-retry-gone"')]
        return runs, gone, {r.video_id: r for r in await list_videos(client, "retry")}

    runs, gone, latest = run(go())
    assert len(runs) == 2 and len(gone) == 1, "only the SilentAudio failure ran again"
    assert latest["retry-silent"].error_type == "SilentAudio" and latest["retry-ok"].status == "Completed"

    status = run_cli("-m", "starter", "status", "--batch-id", "retry", env=stack.env(), timeout=60)
    lines = status.stdout.splitlines()
    assert lines[0] == "batch retry: 3 videos: completed 1, failed 2", status.stdout + status.stderr
    assert "  failed SilentAudio: 1" in lines and "  failed VideoUnavailable: 1" in lines, status.stdout
    assert "  (1 earlier runs of videos run again are not counted)" in lines, status.stdout


def test_stats_dry_run_and_limit(stack):
    rows = [(f"dry-{i}", SHORT) for i in range(5)]
    csv_path = write_csv(stack, "dry", rows)
    result = run_cli("-m", "starter", "start", "--csv", str(csv_path), "--batch-id", "dry", "--dry-run",
                     "--limit", "3", env=stack.env())  # fmt: skip
    assert result.returncode == 0 and "3 valid rows" in result.stdout and "(dry run)" in result.stdout, result.stdout

    async def go():
        client = await client_of(stack)
        deadline = time.monotonic() + 60
        while (await client.get_workflow_handle("batch-dry").describe()).status == WorkflowExecutionStatus.RUNNING:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        return await batch_progress(client, "dry"), await batch_counts(client, "dry")

    progress, counts = run(go())
    assert progress.total == 3 and progress.skipped == 3 and counts.total == 0, "a dry run starts no video"

    stats = run_cli("-m", "starter", "stats", "--batch-id", "win", env=stack.env())
    assert stats.returncode == 0, stats.stderr
    assert "batch win: 6/6 done (100.0%)" in stats.stdout and "cpu" in stats.stdout and "ETA" in stats.stdout
    as_json = json.loads(run_cli("-m", "starter", "stats", "--batch-id", "win", "--json", env=stack.env()).stdout)
    assert as_json["completed"] == 6 and as_json["per_class"]["cpu"]["videos"] == 6


def test_daily_manifest_lists_each_video_once_and_is_idempotent(stack):
    from datetime import datetime, timezone

    from core.models import SCHEMA_VERSION

    today = datetime.now(timezone.utc).date().isoformat()
    first = run_cli("-m", "starter", "manifest", "--date", today, env=stack.env(), timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    store = ObjectStore(stack.settings())
    key = f"manifests/manifest_{today}.jsonl"
    body = store.get_bytes(key)
    lines = [json.loads(line) for line in body.decode().splitlines()]
    ids = [line["video_id"] for line in lines]
    assert len(ids) == len(set(ids)), "each video once"
    assert {f"win-{i}" for i in range(6)} <= set(ids) and "both-2" in ids
    assert f"manifest {today}: {len(ids)} videos" in first.stdout
    sample = next(line for line in lines if line["video_id"] == "win-0")
    assert sample["outputs"]["metadata"] == f"win-0/v{SCHEMA_VERSION}/metadata.json" and sample["duration_s"] > 0
    assert sample["schema_version"] == SCHEMA_VERSION
    assert {"url", "num_speakers", "usable_pct"} <= set(sample)

    again = run_cli("-m", "starter", "manifest", "--date", today, env=stack.env(), timeout=120)
    assert again.returncode == 0 and store.get_bytes(key) == body, "same day, same manifest"

    created = run_cli("-m", "starter", "schedule-manifests", "--hour", "3", env=stack.env())
    updated = run_cli("-m", "starter", "schedule-manifests", "--hour", "4", env=stack.env())
    assert "created" in created.stdout and "updated" in updated.stdout, created.stderr + updated.stderr

    async def describe():
        client = await client_of(stack)
        return await client.get_schedule_handle("manifest-daily").describe()

    description = run(describe())
    calendar = description.schedule.spec.calendars[0]
    assert [r.start for r in calendar.hour] == [4] and description.schedule.action.workflow == "ManifestWorkflow"
