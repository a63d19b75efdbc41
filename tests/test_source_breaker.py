"""The source breaker on a real stack: a source pushing back (429s, or a bot check
appearing mid-batch) makes the batch pause itself, then resume after the cool-down, and
no good video is marked failed.

The fault is injected at the network edge: the media server's /flaky/<fault>/1/ paths
answer the first request with the fault, the next ones with the file. The faults are
429 Too Many Requests (RateLimited) and a Cloudflare anti-bot challenge page, which the
pinned yt-dlp's generic extractor recognises (SourceBlocked).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from core.contracts.video import SourceBreaker
from core.service.metrics import BREAKER_TRIPS
from core.service.temporal import connect
from devstack.stack import free_port
from starter.batch import start_batch
from starter.status import batch_progress
from tests.conftest import metric_total, scrape_metrics
from tests.fleet import wait_batch, worker

pytestmark = pytest.mark.integration

COOLDOWN_S = 8.0


@pytest.mark.parametrize(("fault", "error_type"), [("429", "RateLimited"), ("challenge", "SourceBlocked")])
def test_the_batch_pauses_for_a_cool_down_when_the_source_pushes_back(stack, media_server, fault, error_type):
    batch_id = f"breaker-{fault}"
    breaker = SourceBreaker(threshold=0.5, min_samples=3, window_s=600, cooldown_s=COOLDOWN_S, video_waits=2)
    metrics_at = f"127.0.0.1:{free_port()}"
    worker(stack, batch_id, batch_id, PIPELINE_METRICS_ADDRESS=metrics_at)
    pushed = [
        (f"{fault}-pushed-{i}", f"{media_server.url}/flaky/{fault}/1/ep05-radio-segment.ogg?v={i}")
        for i in range(4)
    ]
    calm = [(f"{fault}-calm-{i}", f"{media_server.url}/ep03-three-voices.ogg?v={fault}{i}") for i in range(3)]
    csv_path = stack.config.data_dir / f"{batch_id}.csv"
    csv_path.write_text("video_id,url\n" + "".join(f"{v},{u}\n" for v, u in pushed + calm))
    settings = stack.settings(task_queue_prefix=batch_id, source_breaker=breaker)

    async def start():
        report = await start_batch(await connect(settings), settings, csv_path, batch_id, window=4)
        assert report.submitted and report.valid == 7

    asyncio.run(start())
    counts = wait_batch(stack, batch_id, timeout_s=600)
    assert counts.by_status == {"Completed": 7}, "a source pushing back marks no video failed"

    async def history():
        client = await connect(stack.settings())
        progress = await batch_progress(client, batch_id)
        events = [e async for e in client.get_workflow_handle(f"batch-{batch_id}").fetch_history_events()]
        return progress, events

    progress, events = asyncio.run(history())
    assert progress.breaker_trips >= 1 and progress.failed == 0 and progress.completed == 7
    # between the pause and the resume the batch started nothing
    timeline, troubles = [], []
    for event in events:
        kind = event.WhichOneof("attributes")
        if kind == "workflow_execution_signaled_event_attributes":
            signal = event.workflow_execution_signaled_event_attributes
            if signal.signal_name == "source_trouble":
                troubles.append(json.loads(signal.input.payloads[0].data)["error_type"])
        elif kind == "upsert_workflow_search_attributes_event_attributes":
            stage = (
                event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields.get(
                    "PipelineStage"
                )
            )
            if stage is not None:
                timeline.append(("stage", stage.data.decode().strip('"'), event.event_time.ToSeconds()))
        elif kind == "start_child_workflow_execution_initiated_event_attributes":
            timeline.append(
                (
                    "start",
                    event.start_child_workflow_execution_initiated_event_attributes.workflow_id,
                    event.event_time.ToSeconds(),
                )
            )
    assert troubles and set(troubles) == {error_type}, "the breaker counted the source's own error type"
    paused = next(i for i, e in enumerate(timeline) if e[:2] == ("stage", "paused-source"))
    resumed = next(i for i, e in enumerate(timeline) if i > paused and e[:2] == ("stage", "running"))
    assert not [e for e in timeline[paused:resumed] if e[0] == "start"], timeline
    held_s = timeline[resumed][2] - timeline[paused][2]
    print(
        f"\nsource breaker ({error_type}): tripped after {sum(e[0] == 'start' for e in timeline[:paused])} "
        "starts, "
        f"held {held_s:.0f} s (cool-down {COOLDOWN_S:.0f} s), {progress.completed} completed, 0 failed"
    )
    assert held_s >= COOLDOWN_S - 1
    assert [e[1] for e in timeline[resumed:] if e[0] == "start"], "the batch went on after the cool-down"
    trips = metric_total(scrape_metrics(metrics_at), BREAKER_TRIPS, batch_id=batch_id)
    assert trips == progress.breaker_trips, "the trip is counted where Prometheus scrapes"
    assert stack.stop_process(batch_id) == 0
