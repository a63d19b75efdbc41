"""BatchWorkflow on the embedded stack: sliding window across continue-as-new, one run
per video across batches, pause/resume, cancel, retry-failed, stats, dry run."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import search_attributes as sa
from core.service.temporal import connect
from core.store.objects import ObjectStore
from devstack.media import ffmpeg
from devstack.stack import Stack
from starter.batch import start_batch
from starter.status import batch_counts, batch_progress, list_videos, wait_for_batch
from tests.conftest import run_cli, start_cli

pytestmark = pytest.mark.integration

SHORT = "ep05-radio-segment.ogg"  # 8 s


@pytest.fixture(scope="module", autouse=True)
def batch_worker(stack):
    """The module's worker on the session's servers (conftest ``stack``)."""
    stack.start_worker("batch-worker")


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


def between_runs(error: Exception) -> bool:
    """The one query failure a batch may answer while it continues as new: the next run
    exists but has not run its first workflow task yet, so it cannot answer yet."""
    return isinstance(error, RPCError) and any(text in str(error) for text in BETWEEN_RUNS)


BETWEEN_RUNS = (
    "Workflow state is not ready to handle the request",  # no workflow task completed yet
    "Workflow task is not scheduled yet",
)


WINDOW_ROWS = [(f"win-{i}", SHORT) for i in range(6)]


@pytest.fixture(scope="module")
def window_batch(stack):
    """Batch ``win``: six videos through a window of 2 across continue-as-new runs,
    observed while it runs: (in flight at each answered query, queries refused between
    runs, final progress). The stats and manifest tests read this batch too, so it is a
    fixture: whichever test comes first runs it."""
    csv_path = write_csv(stack, "win", WINDOW_ROWS)

    async def go():
        client = await client_of(stack)
        report = await start_batch(client, stack.settings(), csv_path, "win", window=2, max_events_per_run=30)
        assert report.submitted and report.valid == 6
        running: list[int] = []  # in flight, as each answered query saw it
        refused: list[str] = []  # queries refused between two runs
        while True:
            desc = await client.get_workflow_handle("batch-win").describe()
            try:
                progress = await batch_progress(client, "win")
                running.append(progress.running)
            except Exception as error:
                if not between_runs(error):
                    raise
                refused.append(repr(error))
            if desc.status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.3)
        return running, refused, await batch_progress(client, "win")

    return run(go())


def test_sliding_window_survives_continue_as_new(stack, window_batch):
    """With window 2 the batch keeps exactly 2 videos in flight: never more (the bound),
    and it does reach 2 (the window really fills), across several continue-as-new runs.
    Only the error a batch gives between two runs is tolerated, and most queries must
    answer: a peak of 0 from swallowed errors cannot pass."""
    running, refused, progress = window_batch
    print(
        f"\nwindow: {len(running)} answered queries, peak {max(running, default=0)}, "
        f"{len(refused)} refused between runs"
    )
    assert len(running) >= 10 and len(running) > len(refused), (running, refused)
    assert max(running) == 2, f"the window of 2 fills and is never exceeded: {running}"
    assert progress.runs >= 2, "the batch continued as new at least once"
    assert (progress.completed, progress.failed, progress.total) == (6, 0, 6)
    assert progress.per_class["cpu"].videos == 6 and progress.audio_h_per_h_overall > 0
    store = ObjectStore(stack.settings())
    assert all(store.exists(store.keys(v).metadata) for v, _ in WINDOW_ROWS)


def test_same_video_in_two_batches_runs_once(stack):
    """A video in two batches started at once runs once: exactly one VideoWorkflow run
    carries its VideoId in the whole namespace (a per-batch workflow id would give two),
    that run completed, and the committed metadata names that very run as its writer
    (committed_by), so no other run wrote or rewrote the commit."""
    a = write_csv(stack, "two-a", [("both-1", SHORT), ("both-2", SHORT)])
    b = write_csv(stack, "two-b", [("both-2", SHORT), ("both-3", SHORT)])

    async def go():
        client = await client_of(stack)
        await asyncio.gather(
            start_batch(client, stack.settings(), a, "two-a"),
            start_batch(client, stack.settings(), b, "two-b"),
        )
        await wait_for_batch(client, "two-a")
        await wait_for_batch(client, "two-b")
        runs = {
            vid: [
                wf
                async for wf in client.list_workflows(f'VideoId = "{vid}" AND WorkflowType = "VideoWorkflow"')
            ]
            for vid in ("both-2", "both-1", "both-3")  # the shared one first
        }
        return runs, await batch_progress(client, "two-a"), await batch_progress(client, "two-b")

    runs, pa, pb = run(go())
    store = ObjectStore(stack.settings())
    for vid, found in runs.items():
        assert [(wf.id, wf.status) for wf in found] == [
            (f"video-{vid}", WorkflowExecutionStatus.COMPLETED)
        ], f"{vid}: one run, completed: {[(wf.id, wf.run_id, wf.status) for wf in found]}"
        committed_by = store.get_json(store.keys(vid).metadata)["committed_by"]
        assert committed_by == {"workflow_id": f"video-{vid}", "run_id": found[0].run_id}, vid
    assert runs["both-2"][0].typed_search_attributes.get(sa.BATCH_ID) in ("two-a", "two-b")
    assert pa.completed + pb.completed == 3, "three distinct videos, each processed once"
    assert pa.not_started + pb.not_started == 1  # running in the other batch (or already done there)


async def wait_for_progress(client, batch_id: str, until, what: str, timeout_s: float = 300.0):
    """Poll the batch's progress query until ``until(progress)`` holds (a generous timeout:
    the event is awaited, its time is never asserted)."""
    deadline = time.monotonic() + timeout_s
    while True:
        progress = await batch_progress(client, batch_id)
        if until(progress):
            return progress
        assert time.monotonic() < deadline, (
            f"batch {batch_id}: {what} not seen within {timeout_s:.0f} s: {progress}"
        )
        await asyncio.sleep(0.2)


def test_pause_and_resume(stack):
    """Window 1, three videos. Pause while the first video runs: it finishes (running
    videos are never stopped), and nothing new starts while paused, however often the
    batch is asked. Resume: the other two run, one after the other. The batch's own
    history shows the order: one child started before the pause, its report arriving
    while paused, no child started until the resume, then the other two in turn."""
    rows = [(f"pause-{i}", SHORT) for i in range(3)]
    csv_path = write_csv(stack, "pause", rows)

    async def go():
        client = await client_of(stack)
        await start_batch(client, stack.settings(), csv_path, "pause", window=1)
        handle = client.get_workflow_handle("batch-pause")
        await started(client.get_workflow_handle("video-pause-0"), timeout_s=120)
        paused = run_cli("-m", "starter", "pause", "--batch-id", "pause", env=stack.env())  # as an operator
        assert paused.returncode == 0 and "batch pause: pause sent" in paused.stdout, paused.stderr
        # the event: the first video finished and the batch counted it, while paused
        frozen = await wait_for_progress(client, "pause", lambda p: p.done == 1, "the first video done")
        observed = []
        for _ in range(5):  # asked again and again: still nothing new in flight
            observed.append(await batch_progress(client, "pause"))
            await asyncio.sleep(0.3)
        try:
            second = await client.get_workflow_handle("video-pause-1").describe()
        except RPCError as error:
            assert error.status == RPCStatusCode.NOT_FOUND, error
            second = None
        assert frozen.paused and frozen.running == 0 and frozen.completed == 1, frozen
        seen = [(p.paused, p.running, p.done) for p in observed]
        assert seen == [(True, 0, 1)] * 5, f"nothing new starts while paused: {seen}"
        assert second is None, f"video-pause-1 started while paused: {second.status}"
        resumed = run_cli("-m", "starter", "resume", "--batch-id", "pause", env=stack.env())
        assert resumed.returncode == 0 and "batch pause: resume sent" in resumed.stdout, resumed.stderr
        await wait_for_batch(client, "pause")
        history = [event async for event in handle.fetch_history_events()]
        return await batch_progress(client, "pause"), history

    final, history = run(go())
    assert final.completed == 3 and not final.paused and final.runs == 1  # one run: one history
    order = []
    for event in history:
        if event.HasField("workflow_execution_signaled_event_attributes"):
            name = event.workflow_execution_signaled_event_attributes.signal_name
            if name in ("pause", "resume", "video_done"):
                order.append(name)
        elif event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            order.append(event.start_child_workflow_execution_initiated_event_attributes.workflow_id)
    assert order == [
        "video-pause-0",
        "pause",
        "video_done",  # the running video finished while paused
        "resume",
        "video-pause-1",
        "video_done",
        "video-pause-2",
        "video_done",
    ], order


def long_media(stack: Stack) -> str:
    """~3.5 min of real speech and music: still running when the test acts on it."""
    name = "batch-long.wav"
    if not (stack.config.media_dir / name).exists():
        media = stack.config.media_dir
        looped = ("-stream_loop", "4", "-i", str(media / "ep01-jingle-and-two-hosts.ogg"))
        ffmpeg(*looped, "-ac", "1", "-ar", "16000", str(media / name))
    return name


def test_cancel_stops_the_batch_and_its_running_video(stack):
    long_name = long_media(stack)
    rows = [(f"cancel-{i}", long_name) for i in range(3)]
    result = start_cli(
        str(write_csv(stack, "cancel", rows)),
        "cancel",
        "--window",
        "1",
        env=stack.env(),
    )
    assert result.returncode == 0, result.stderr

    async def go():
        client = await client_of(stack)
        handle = client.get_workflow_handle("video-cancel-0")
        await started(handle)
        status = run_cli("-m", "starter", "status", "--batch-id", "cancel", "--videos", env=stack.env())
        line = next(x for x in status.stdout.splitlines() if x.startswith("cancel-0 "))
        assert line.split()[1] == "running", status.stdout
        assert line.split()[-1] in (  # the live stage
            "download",
            "diarize+music",
            "diarize",
            "music",
            "embed",
            "embed+labels",
            "labels",
        ), status.stdout
        cancel = run_cli("-m", "starter", "cancel", "--batch-id", "cancel", env=stack.env())
        assert cancel.returncode == 0 and "cancel sent" in cancel.stdout
        for _ in range(100):
            batch = await client.get_workflow_handle("batch-cancel").describe()
            video = await handle.describe()
            if (
                batch.status != WorkflowExecutionStatus.RUNNING
                and video.status != WorkflowExecutionStatus.RUNNING
            ):
                break
            await asyncio.sleep(0.2)
        return batch.status, video.status, await batch_counts(client, "cancel")

    batch_status, video_status, counts = run(go())
    assert (batch_status, video_status) == (
        WorkflowExecutionStatus.CANCELED,
        WorkflowExecutionStatus.CANCELED,
    )
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
    first = start_cli(
        str(csv_path),
        "retry",
        "--wait",
        env=stack.env(),
        timeout=300,
    )
    assert "summary: 1 completed, 2 failed" in first.stdout, first.stdout + first.stderr
    retry = run_cli(
        "-m",
        "starter",
        "retry-failed",
        "--batch-id",
        "retry",
        "--error-type",
        "SilentAudio",
        "--wait",
        env=stack.env(),
        timeout=300,
    )
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


def test_stats_dry_run_and_limit(stack, window_batch):
    rows = [(f"dry-{i}", SHORT) for i in range(5)]
    csv_path = write_csv(stack, "dry", rows)
    result = start_cli(
        str(csv_path),
        "dry",
        "--dry-run",
        "--limit",
        "3",
        "--wait",
        env=stack.env(),
    )
    assert result.returncode == 0 and "3 valid rows" in result.stdout and "(dry run" in result.stdout, (
        result.stdout
    )
    assert "dry run dry: paged through 3 of 3 rows" in result.stdout, result.stdout

    async def go():
        client = await client_of(stack)
        status = (await client.get_workflow_handle("batch-dry.dry-run").describe()).status
        return (
            status,
            await batch_progress(client, "dry", "batch-dry.dry-run"),
            await batch_counts(client, "dry"),
        )

    status, progress, counts = run(go())
    assert status == WorkflowExecutionStatus.COMPLETED
    assert progress.total == 3 and progress.skipped == 3 and counts.total == 0, "a dry run starts no video"

    stats = run_cli("-m", "starter", "stats", "--batch-id", "win", env=stack.env())
    assert stats.returncode == 0, stats.stderr
    assert "batch win: 6/6 done (100.0%)" in stats.stdout and "cpu" in stats.stdout and "ETA" in stats.stdout
    as_json = json.loads(
        run_cli("-m", "starter", "stats", "--batch-id", "win", "--json", env=stack.env()).stdout
    )
    assert as_json["completed"] == 6 and as_json["per_class"]["cpu"]["videos"] == 6


def test_a_real_start_after_dry_runs_starts_the_batch(stack):
    """Issue 22: the README's order (dry run, then start) started nothing: the dry run's
    BatchWorkflow held the batch's id and its input. Now a dry run leaves neither: a
    second dry run replaces the first (even one still paging: no worker serves its
    queue here), a dry run of an edited CSV is fine, and the real start runs the batch."""
    rows = [(f"order-{i}", SHORT) for i in range(2)]
    csv_path = write_csv(stack, "order", rows)
    env = {**stack.env(), "PIPELINE_TASK_QUEUE_PREFIX": "nobody-polls"}  # the dry runs stay running
    first = start_cli(str(csv_path), "order", "--dry-run", env=env)
    second = start_cli(str(csv_path), "order", "--dry-run", env=env)
    edited = write_csv(stack, "order-edited", rows + [("order-2", SHORT)])
    third = start_cli(str(edited), "order", "--dry-run", env=env)
    for result in (first, second, third):
        assert result.returncode == 0 and "workflow batch-order.dry-run (dry run" in result.stdout, (
            result.stdout + result.stderr
        )
    real = start_cli(str(csv_path), "order", "--wait", env=stack.env())
    assert real.returncode == 0, real.stdout + real.stderr
    assert "batch order: already running" not in real.stdout, real.stdout
    assert "summary: 2 completed, 0 failed" in real.stdout, real.stdout

    # the edited CSV under the same id is refused, with what to do
    again = start_cli(str(edited), "order", env=stack.env())
    assert again.returncode == 2 and "start this CSV under a new --batch-id" in again.stderr, again.stderr
    note = start_cli(str(edited), "order", "--dry-run", env=env)
    assert "note: a real start would be refused" in note.stdout, note.stdout

    async def dry_runs_left_running():
        client = await client_of(stack)
        handle = client.get_workflow_handle("batch-order.dry-run")
        running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.terminate("test over")
        return running

    assert run(dry_runs_left_running()), "the last dry run is the one still paging"


def test_daily_manifest_lists_each_video_once_and_is_idempotent(stack, window_batch):
    from datetime import datetime

    from core.contracts.video import SCHEMA_VERSION

    today = datetime.now(UTC).date().isoformat()
    first = run_cli("-m", "starter", "manifest", "--date", today, env=stack.env(), timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    store = ObjectStore(stack.settings())
    key = f"manifests/manifest_{today}.jsonl"
    body = store.get_bytes(key)
    lines = [json.loads(line) for line in body.decode().splitlines()]
    ids = [line["video_id"] for line in lines]
    assert len(ids) == len(set(ids)), "each video once"
    assert {f"win-{i}" for i in range(6)} <= set(ids)
    assert f"manifest {today}: {len(ids)} videos" in first.stdout
    sample = next(line for line in lines if line["video_id"] == "win-0")
    assert (
        sample["outputs"]["metadata"] == f"win-0/v{SCHEMA_VERSION}/metadata.json" and sample["duration_s"] > 0
    )
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
    assert [r.start for r in calendar.hour] == [
        4
    ] and description.schedule.action.workflow == "ManifestWorkflow"


def _decoded_history(history_json: str) -> str:
    """A history's JSON with every payload's base64 data decoded beside it."""
    import base64

    found: list[str] = [history_json]

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, str):
                    try:
                        found.append(base64.b64decode(value).decode("utf-8", "replace"))
                    except ValueError:
                        pass
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(history_json))
    return "\n".join(found)


def test_a_token_url_never_enters_temporals_history(stack):
    """Issue 22: a URL's token and user:password travelled in the batch's pages and state
    and in the video's input, so Temporal stored them and the Web UI showed them. Now a
    payload holds the redacted URL and where its row is stored; the download reads the
    URL from the batch's input. The whole history of the batch and of the video, and the
    worker's log, are scanned; the video completes from the real URL."""
    token, password = "tok-5ec7e7a91b", "pw-91f0e2c4d8"
    url = stack.media_url.replace("http://", f"http://fleet:{password}@") + f"/{SHORT}?token={token}"
    csv_path = stack.config.data_dir / "secrets.csv"
    csv_path.write_text(f"video_id,url\nsecret-1,{url}\n")
    result = start_cli(str(csv_path), "secrets", "--wait", env=stack.env())
    assert result.returncode == 0 and "summary: 1 completed, 0 failed" in result.stdout, (
        result.stdout + result.stderr
    )

    async def histories() -> str:
        client = await client_of(stack)
        found = []
        for workflow_id in ("batch-secrets", "video-secret-1"):
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            found.append(_decoded_history(history.to_json()))
        return "\n".join(found)

    seen = run(histories())
    assert "token=REDACTED" in seen, "the redacted URL is what the payloads carry"
    # the pipeline's logs: the workers', Temporal's, storage's (the source's own access
    # log, media.log, rightly shows the URL it was asked for)
    logs = [p for p in stack.logs.glob("*.log") if p.name != "media.log"]
    assert any(p.name == "batch-worker.log" for p in logs)
    shown = seen + result.stdout + result.stderr + "".join(p.read_text(errors="replace") for p in logs)
    for secret in (token, password):
        assert secret not in shown
    store = ObjectStore(stack.settings())
    meta = store.get_json(store.keys("secret-1").metadata)
    assert token not in json.dumps(meta) and meta["source"]["url"].endswith("?token=REDACTED")
