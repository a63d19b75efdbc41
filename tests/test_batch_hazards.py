"""Batch hazards (issue 12): each one reproduced on the real servers, then fixed.

1. a ``video_done`` report delivered in the same activation as its child's start;
2. payloads past Temporal's 2 MB limit (long signed URLs, a wide window);
3. a storage outage longer than the batch's retries;
4. an unknown ``--gpu-class``;
5. two concurrent starts of one batch id with different CSVs;
6. ``write_manifest`` blocking the worker's event loop.

The batch runs on a Temporal dev server and a localbucket S3 server started here, with
an in-process worker that hosts the real BatchWorkflow and the real batch activities.
Where a child video's work does not matter, a tiny ``VideoWorkflow`` registered only in
this file stands in for the real one: it reports to its batch at once, as a video that
fails straight away would.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import (
    Interceptor,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from activities.batch import BatchActivities
from activities.manifest import ManifestActivities
from activities.runtime import Runtime
from core.contracts import queues
from core.contracts.batch import (
    MAX_PAGE_BYTES,
    MAX_PAGE_SIZE,
    MAX_RECENT,
    MAX_WINDOW,
    TEMPORAL_PAYLOAD_LIMIT,
    BatchJob,
    BatchPage,
    BatchPageRequest,
    BatchState,
    ClassUsage,
    batch_payload_bound,
)
from core.contracts.gpu_profiles import PROFILES
from core.contracts.ids import MAX_ID_LENGTH
from core.contracts.video import MAX_URL_LENGTH, VideoJob, VideoReport, VideoSpec, VideoState
from core.service.temporal import connect
from core.store.layout import batch_input_key
from core.store.objects import ObjectStore
from devstack.stack import Stack, free_port
from starter.batch import BatchInputConflict, StartReport, UnknownGpuClass, start_batch
from starter.status import batch_progress
from tests.conftest import start_cli
from workflows import policies
from workflows.batch import BatchWorkflow

pytestmark = pytest.mark.integration
SLOW_LINK_S = 0.6  # each storage request of the manifest test waits this long


@workflow.defn(name="VideoWorkflow")
class InstantVideo:
    """Stands in for VideoWorkflow: reports to its batch at once, and ends."""

    @workflow.run
    async def run(self, job: VideoJob) -> None:
        parent = workflow.info().parent
        if parent is None:
            return  # started on its own (the manifest test): nothing to report
        report = VideoReport(
            video_id=job.spec.video_id, state=VideoState.COMPLETED, audio_s=1.0, gpu_class="cpu"
        )
        await workflow.get_external_workflow_handle(parent.workflow_id).signal("video_done", report)


@contextlib.asynccontextmanager
async def batch_worker(client: Client, prefix: str, stack: Stack, interceptors=()):
    """The real BatchWorkflow and batch activities, plus the instant child, on ``prefix``.
    The activities use the stack, and fail at once on an outage (no ride-out), so the
    batch's own retry policy is what the outage test exercises."""
    batch = BatchActivities(Runtime(stack.settings(storage_ride_out_s=0)))
    with ThreadPoolExecutor(8) as executor:
        worker = Worker(
            client,
            task_queue=queues.workflow_queue(prefix),
            workflows=[BatchWorkflow, InstantVideo],
            activities=[batch.read_batch_page, batch.closed_videos],
            activity_executor=executor,
            workflow_runner=UnsandboxedWorkflowRunner(),
            interceptors=list(interceptors),
        )
        async with worker:
            yield worker


def write_rows(stack: Stack, name: str, ids: list[str], url: str | None = None):
    path = stack.config.data_dir / f"{name}.csv"
    rows = "".join(f"{v},{url or f'{stack.media_url}/{v}.ogg'}\n" for v in ids)
    path.write_text("video_id,url\n" + rows)
    return path


async def wait_closed(client: Client, workflow_id: str, timeout_s: float) -> WorkflowExecutionStatus | None:
    """The batch's status once it is no longer running, or RUNNING after ``timeout_s``."""
    handle = client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + timeout_s
    while True:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


# --- 1. a report in the same activation as its child's start -----------------------------
class _ReportArrivesWithStart(Interceptor):
    """Injected fault (a slow batch worker): the batch's workflow task that resolves a
    child's start fails until that child's ``video_done`` report has arrived too. Temporal
    retries the task with every event since the last completed one, so the start's
    resolution and the report land in one activation: what happens in production when the
    child ends before the batch's worker picks up the start (the SDK runs signal handlers
    before resolutions). Nothing else of the workflow is touched."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput):
        return _Inbound


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        self.reported: set[str] = set()
        super().init(_Outbound(outbound, self.reported))

    async def handle_signal(self, input) -> None:
        if input.signal == "video_done":
            report = input.args[0]
            self.reported.add(report.video_id if isinstance(report, VideoReport) else report["video_id"])
        await super().handle_signal(input)


class _Outbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, reported: set[str]) -> None:
        super().__init__(next)
        self.reported = reported

    async def start_child_workflow(self, input):
        handle = await super().start_child_workflow(input)
        if input.id.removeprefix("video-") not in self.reported:
            raise RuntimeError("injected: the batch worker is slow; this task is retried")
        return handle


def test_report_in_the_same_activation_as_the_start_frees_the_slot(stack):
    """Three videos, window 1, reconcile every 5 minutes: each video's report arrives in
    the activation that resolves its start. Before the fix the batch dropped the report
    (the id was not in flight yet) and the slot leaked until the reconcile."""
    prefix = f"h1-{uuid.uuid4().hex[:6]}"
    ids = [f"same-act-{i}" for i in range(3)]
    csv_path = write_rows(stack, "same-act", ids)

    async def go():
        settings = stack.settings(task_queue_prefix=prefix)
        client = await connect(settings)
        async with batch_worker(client, prefix, stack, [_ReportArrivesWithStart()]):
            report = await start_batch(client, settings, csv_path, "same-act", window=1, reconcile_s=300)
            assert report.submitted and report.valid == 3
            status = await wait_closed(client, "batch-same-act", timeout_s=30)
            progress = await batch_progress(client, "same-act")
            if status == WorkflowExecutionStatus.RUNNING:
                await client.get_workflow_handle("batch-same-act").terminate("test over")
            return status, progress

    status, progress = asyncio.run(go())
    assert (progress.completed, progress.running) == (3, 0), progress
    assert status == WorkflowExecutionStatus.COMPLETED, "every report counted before the reconcile"


# --- 2. payloads past Temporal's 2 MB limit -----------------------------------------------
def payload_bytes(value) -> int:
    """What the value weighs as a Temporal payload, as the workers encode it."""
    return pydantic_data_converter.payload_converter.to_payloads([value])[0].ByteSize()


def worst_url(length: int = MAX_URL_LENGTH) -> str:
    """A URL at the cap whose every character JSON escapes to 6 bytes."""
    return "http://h/" + "\x01" * (length - 9)


def worst_spec(i: int) -> VideoSpec:
    return VideoSpec(
        video_id=f"{i:0{MAX_ID_LENGTH}d}",
        url=worst_url(),
        duration_hint_s=1e308,
        batch_id="b" * MAX_ID_LENGTH,
    )


def test_worst_case_batch_state_and_page_fit_well_under_the_payload_limit():
    """The bound computed from the declared caps is under half of Temporal's limit, and
    a state built at every cap (a full page pending, the widest window, the recent list
    full, every error type and class) weighs less than that bound."""
    bound = batch_payload_bound()
    assert bound < TEMPORAL_PAYLOAD_LIMIT / 2, f"{bound} bytes"
    pending, size = [], 0
    while size + len(worst_spec(len(pending)).model_dump_json()) + 1 <= MAX_PAGE_BYTES:
        size += len(worst_spec(len(pending)).model_dump_json()) + 1
        pending.append(worst_spec(len(pending)))
    assert pending, "one row at the caps fits in a page"
    page = BatchPage(specs=pending, committed=[], next_offset=2**62, eof=False)
    state = BatchState(
        pending=pending,
        in_flight=[f"{i:0{MAX_ID_LENGTH}d}" for i in range(MAX_WINDOW)],
        failed_by_error={f"SomeTypedError{i:02d}": 10**9 for i in range(40)},
        per_class={c: ClassUsage(videos=10**9, audio_s=1e308, gpu_s=1e308) for c in PROFILES},
        recent=[(1.7976931348623157e308, -2.2250738585072014e-308)] * MAX_RECENT,
        next_offset=2**62,
        started=2**62,
        audio_s=1e308,
        started_at=1e308,
    )
    job = BatchJob(
        batch_id="b" * MAX_ID_LENGTH,
        input_key=f"some/prefix/_batches/{'b' * 64}/videos.csv",
        total=2**62,
        window=MAX_WINDOW,
        page_size=MAX_PAGE_SIZE,
        gpu_class="a100-80",
        queue_prefix="p" * 64,
        state=state,
    )
    sizes = payload_bytes(page), payload_bytes(job)
    assert max(sizes) <= bound, sizes
    for too_wide in ({"window": MAX_WINDOW + 1}, {"page_size": MAX_PAGE_SIZE + 1}):
        with pytest.raises(ValidationError):
            BatchJob(batch_id="b", input_key="k", total=1, gpu_class="cpu", queue_prefix="p", **too_wide)
    with pytest.raises(ValidationError, match=f"at most {MAX_URL_LENGTH}"):
        VideoSpec(video_id="v", url=worst_url(MAX_URL_LENGTH + 1))


def upload_rows(stack: Stack, name: str, rows: list[tuple[str, str]]) -> str:
    """The validated input as the starter uploads it (video_id,url,duration_s)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([(v, u, "") for v, u in rows])
    store = ObjectStore(stack.settings())
    key = f"_batches/{name}/videos.csv"
    store.put_bytes(key, buffer.getvalue().encode(), "text/csv")
    return key


def test_pages_of_urls_at_the_cap_stay_under_the_payload_limit(stack):
    """300 rows whose URLs are at the cap (49 KB each as JSON: 14 MB as one page of the
    default 500 rows) come back from the real read_batch_page, over real S3, in pages
    that each weigh less than the computed bound."""
    rows = [(f"long-{i:03d}", worst_url()) for i in range(300)]
    key = upload_rows(stack, "long-page", rows)
    env = ActivityEnvironment()
    seen, offset, sizes = [], 0, []
    while True:
        page = env.run(
            BatchActivities(Runtime(stack.settings())).read_batch_page,
            BatchPageRequest(
                input_key=key, offset=offset, max_rows=500, batch_id="long-page", skip_committed=False
            ),
        )
        sizes.append(payload_bytes(page))
        seen += [spec.video_id for spec in page.specs]
        assert all(spec.url == worst_url() for spec in page.specs)
        offset = page.next_offset
        if page.eof:
            break
    assert seen == [v for v, _ in rows], "every row once, in order"
    assert max(sizes) <= batch_payload_bound() < TEMPORAL_PAYLOAD_LIMIT / 2, sizes
    assert len(sizes) > 50, "long rows make short pages"


def test_a_batch_of_600_signed_urls_runs_through(stack):
    """The issue's case: 600 signed URLs of 4.5 KB, paged by the real BatchWorkflow (a
    dry run: no video starts). Before the caps, the first page (500 rows, 2.3 MB) was
    past the payload limit and the batch never got on. (Pages now carry URLs redacted,
    so the tokens no longer weigh on them either: issue 22.)"""
    prefix = f"h2-{uuid.uuid4().hex[:6]}"
    ids = [f"signed-{i:03d}" for i in range(600)]
    signed = "https://bucket.example.com/a.m4a?X-Amz-Security-Token=" + "T" * 4500
    csv_path = write_rows(stack, "signed", ids, url=signed)

    async def go():
        settings = stack.settings(task_queue_prefix=prefix)
        client = await connect(settings)
        async with batch_worker(client, prefix, stack):
            report = await start_batch(
                client, settings, csv_path, "signed", dry_run=True, max_events_per_run=40
            )
            assert report.submitted and report.valid == 600 and not report.invalid
            status = await wait_closed(client, report.workflow_id, timeout_s=90)
            progress = await batch_progress(client, "signed", report.workflow_id)
            if status == WorkflowExecutionStatus.RUNNING:
                await client.get_workflow_handle(report.workflow_id).terminate("test over")
            return status, progress

    status, progress = asyncio.run(go())
    assert status == WorkflowExecutionStatus.COMPLETED
    assert (progress.total, progress.skipped) == (600, 600) and progress.runs >= 1, progress


# --- 3. a storage outage longer than the batch's retries -------------------------------
def longest_outage_survived_s(retry: RetryPolicy, schedule_to_close: timedelta | None) -> float:
    """How long storage can stay down before an activity with this policy gives up
    (each failing attempt taken as instant, the worst case)."""
    limit = schedule_to_close.total_seconds() if schedule_to_close else float("inf")
    if not retry.maximum_attempts:
        return limit
    waited, interval = 0.0, retry.initial_interval.total_seconds()
    cap = retry.maximum_interval.total_seconds() if retry.maximum_interval else float("inf")
    for _ in range(retry.maximum_attempts - 1):
        waited += min(interval, cap)
        interval *= retry.backoff_coefficient
    return min(waited, limit)


def test_the_batch_storage_policy_outlives_an_hour_long_outage():
    hour = 3600
    assert longest_outage_survived_s(policies.COMMIT.retry, None) < hour, "the policy the batch used to have"
    policy = policies.BATCH_STORAGE
    survived = longest_outage_survived_s(policy.retry, policy.schedule_to_close)
    assert survived >= 6 * hour, survived
    assert policy.retry.maximum_interval <= timedelta(minutes=1), "goes on soon after the outage"


def test_the_batch_waits_out_a_storage_outage(own_stack):
    """Storage is stopped (the real server process) before the batch reads its first
    page and restarted after a few failed reads: the batch goes on and completes. The
    retry policy the workflow really scheduled its reads with must outlive an hour."""
    stack = own_stack
    prefix = f"h3-{uuid.uuid4().hex[:6]}"
    csv_path = write_rows(stack, "outage", ["outage-0", "outage-1"])

    async def go():
        settings = stack.settings(task_queue_prefix=prefix)
        client = await connect(settings)
        report = await start_batch(client, settings, csv_path, "outage", window=2)
        assert report.submitted
        handle = client.get_workflow_handle("batch-outage")
        stack.stop_process("storage")
        try:
            async with batch_worker(client, prefix, stack):
                deadline = time.monotonic() + 60
                while True:
                    pending = (await handle.describe()).raw_description.pending_activities
                    if pending and pending[0].attempt >= 3:
                        assert "StorageUnavailable" in str(pending[0].last_failure)
                        break
                    assert time.monotonic() < deadline, "the page read never failed"
                    await asyncio.sleep(0.2)
                stack.start_storage()
                status = await wait_closed(client, "batch-outage", timeout_s=60)
                progress = await batch_progress(client, "outage")
        finally:
            if "storage" not in stack.procs:
                stack.start_storage()
        return status, progress, await handle.fetch_history()

    status, progress, history = asyncio.run(go())
    assert status == WorkflowExecutionStatus.COMPLETED and progress.completed == 2, progress
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    reads = [a for a in scheduled if a.activity_type.name == "read_batch_page"]
    assert reads
    for read in reads:
        retry = RetryPolicy.from_proto(read.retry_policy)
        schedule_to_close = read.schedule_to_close_timeout.ToTimedelta() or None
        assert longest_outage_survived_s(retry, schedule_to_close) >= 3600, (retry, schedule_to_close)


# --- 4. an unknown --gpu-class ------------------------------------------------------------
def test_an_unknown_gpu_class_is_refused_before_anything_starts(stack):
    csv_path = write_rows(stack, "gpu", ["gpu-0"])
    nowhere = {"PIPELINE_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    result = start_cli(
        str(csv_path),
        "gpu",
        "--gpu-class",
        "x100",
        env=nowhere,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "unknown GPU class 'x100'" in error and all(c in error for c in PROFILES), error
    assert "temporal" not in result.stderr.lower(), "refused before connecting"

    async def go():
        settings = stack.settings()
        client = await connect(settings)
        with pytest.raises(UnknownGpuClass, match="known classes: auto, cpu"):
            await start_batch(client, settings, csv_path, "gpu", "x100")
        with pytest.raises(UnknownGpuClass, match="PIPELINE_GPU_CLASS"):
            await start_batch(client, stack.settings(gpu_class="h200"), csv_path, "gpu", "auto")
        with pytest.raises(RPCError):
            await client.get_workflow_handle("batch-gpu").describe()

    asyncio.run(go())
    store = ObjectStore(stack.settings())
    assert not store.exists(batch_input_key(store.prefix, "gpu")), "nothing uploaded"


# --- 5. two starts of one batch id --------------------------------------------------------
def test_two_starts_of_one_batch_id_never_overwrite_its_input(stack):
    """Two starts of batch ``dup`` at once, with different CSVs: both find the batch not
    running (their checks go out together), one writes the input and starts the batch,
    the other is refused with a typed error. Same CSV again: idempotent."""
    prefix = f"h5-{uuid.uuid4().hex[:6]}"  # no worker polls it: the batch waits, reading nothing
    first = write_rows(stack, "dup-first", ["dup-1", "dup-2"])
    second = write_rows(stack, "dup-second", ["dup-3"])
    store = ObjectStore(stack.settings())
    key = batch_input_key(store.prefix, "dup")

    async def go():
        settings = stack.settings(task_queue_prefix=prefix)
        client = await connect(settings)
        handle = client.get_workflow_handle("batch-dup")
        results = await asyncio.gather(
            start_batch(client, settings, first, "dup"),
            start_batch(client, settings, second, "dup"),
            return_exceptions=True,
        )
        won = [i for i, r in enumerate(results) if isinstance(r, StartReport) and r.submitted]
        refused = [r for r in results if isinstance(r, BatchInputConflict)]
        assert len(won) == 1 and len(refused) == 1, results
        assert "already holds a different CSV" in str(refused[0]) and "new --batch-id" in str(refused[0])
        winner, loser = (first, second) if won == [0] else (second, first)
        stored = store.get_bytes(key)
        winner_ids = [line.split(",")[0] for line in stored.decode().splitlines()]
        assert winner_ids == [line.split(",")[0] for line in winner.read_text().splitlines()[1:]]
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING  # and reads that very file

        same = await asyncio.gather(
            start_batch(client, settings, winner, "dup"), start_batch(client, settings, winner, "dup")
        )
        assert [r.reason for r in same] == ["already running"] * 2, same
        await handle.terminate("test: the batch ended")
        again = await start_batch(client, settings, winner, "dup")
        assert again.submitted, "a finished batch runs again with its own CSV"
        await handle.terminate("test: the batch ended")
        with pytest.raises(BatchInputConflict):
            await start_batch(client, settings, loser, "dup")
        assert store.get_bytes(key) == stored

    asyncio.run(go())


# --- 6. write_manifest on the worker's event loop ----------------------------------------
class SlowStorageLink:
    """Injected fault: a TCP proxy in front of the real S3 server that holds every chunk
    a client sends for ``delay_s`` (a slow link to storage). Responses pass at once."""

    def __init__(self, upstream_port: int, delay_s: float):
        self.upstream_port, self.delay_s = upstream_port, delay_s
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, self.delay_s), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, 0.0), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, delay_s: float) -> None:
        try:
            while data := src.recv(65536):
                time.sleep(delay_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()


async def run_measuring_loop_lag(coro, tick_s: float = 0.005):
    """Await ``coro`` while a task on the same loop measures the longest the loop went
    without running it: what a blocking call costs workflow tasks and heartbeats."""
    loop = asyncio.get_running_loop()
    lag, done = 0.0, False

    async def ticker():
        nonlocal lag
        while not done:
            before = loop.time()
            await asyncio.sleep(tick_s)
            lag = max(lag, loop.time() - before - tick_s)

    task = asyncio.create_task(ticker())
    try:
        return await coro, lag
    finally:
        done = True
        await task


def test_write_manifest_leaves_the_event_loop_free(stack):
    """write_manifest against a storage link that answers each request 0.2 s late: its
    metadata reads and its write take seconds, and the worker's event loop keeps
    running meanwhile. Before the fix each blocking GET stalled the loop, back to back."""
    prefix = f"h6-{uuid.uuid4().hex[:6]}"
    ids = [f"manifest-{i}" for i in range(8)]
    today = datetime.now(UTC).date().isoformat()
    store = ObjectStore(stack.settings())

    async def go():
        settings = stack.settings(task_queue_prefix=prefix)
        client = await connect(settings)
        async with batch_worker(client, prefix, stack):
            for video_id in ids:
                spec = VideoSpec(video_id=video_id, url="http://h/a")
                run = await client.execute_workflow(
                    "VideoWorkflow",
                    VideoJob(spec=spec, queue_prefix=prefix, gpu_class="cpu"),
                    id=f"video-{video_id}",
                    task_queue=queues.workflow_queue(prefix),
                )
                assert run is None
                desc = await client.get_workflow_handle(f"video-{video_id}").describe()
                store.put_json(
                    store.keys(video_id).metadata,
                    {
                        "schema_version": 2,
                        "source": {"url": spec.url},
                        "duration_s": 10.0,
                        "num_speakers": 2,
                        "usable_pct": 50.0,
                        "batch_id": "m",
                        "committed_by": {"run_id": desc.run_id},
                    },
                )
        query = 'WorkflowType = "VideoWorkflow" AND WorkflowId STARTS_WITH "video-manifest-"'
        while (await client.count_workflows(query)).count < len(ids):
            await asyncio.sleep(0.2)
        link = SlowStorageLink(stack.config.s3_port, delay_s=SLOW_LINK_S)
        slow = ManifestActivities(Runtime(stack.settings(s3_endpoint_url=f"http://127.0.0.1:{link.port}")))
        try:
            began = time.monotonic()
            result, lag = await run_measuring_loop_lag(ActivityEnvironment().run(slow.write_manifest, today))
            took = time.monotonic() - began
        finally:
            link.close()
        return result, lag, took

    result, lag, took = asyncio.run(go())
    assert took >= 2 * SLOW_LINK_S, "the slow link was in the way (the reads, then the write)"
    # less than one slow request: no storage call ran on the loop (the margin is for a
    # busy machine, where the loop is also late for reasons of its own)
    assert lag < SLOW_LINK_S - 0.1, f"the event loop stalled for {lag:.2f} s while the manifest was written"
    lines = [json.loads(line) for line in store.get_bytes(result.key).decode().splitlines()]
    assert set(ids) <= {line["video_id"] for line in lines} and result.videos == len(lines)
