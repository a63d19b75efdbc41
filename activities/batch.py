"""read_batch_page: the next rows of a batch's validated CSV, by byte offset.

The starter validated and uploaded the CSV; the BatchWorkflow reads it a page at a
time (a ranged GET), so neither the workflow history nor any payload holds the whole
list. A page ends at a row boundary; ``next_offset`` is where the next page starts.

Videos whose outputs are already committed in storage (by any batch, at any time:
Temporal's history of that run may be long gone) come back in ``committed``: the
batch counts them and starts nothing, so re-running a 340K batch costs one small GET
per finished video and no workflow at all.
"""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.runtime import runtime, stage
from activities.upload import committed_outcome
from core.models import BatchPage, VideoReport, VideoSpec, VideoState
from core.temporal import connect
from workflows import search_attributes as sa
from workflows.batch import video_workflow_id

BYTES_PER_ROW_GUESS = 256
LOOKUP_THREADS = 16  # parallel metadata.json GETs per page


@activity.defn(name="read_batch_page")
def read_batch_page(input_key: str, offset: int, max_rows: int, batch_id: str, skip_committed: bool) -> BatchPage:
    store = runtime().store
    with stage("read_page"):
        want = max_rows * BYTES_PER_ROW_GUESS
        while True:
            data = store.get_range(input_key, offset, want)
            at_end = len(data) < want
            lines = data.split(b"\n")
            if not at_end:
                lines = lines[:-1]  # the last piece may be a partial row
            if len(lines) >= max_rows or at_end:
                break
            want *= 2  # rows longer than guessed: read more
        lines = lines[:max_rows]
        consumed = sum(len(line) + 1 for line in lines)
        rows = [line.decode() for line in lines if line.strip()]
        specs = [
            VideoSpec(
                video_id=r[0],
                url=r[1],
                duration_hint_s=float(r[2]) if len(r) > 2 and r[2] else None,
                batch_id=batch_id,
            )
            for r in csv.reader(io.StringIO("\n".join(rows)))
        ]
        next_offset = offset + min(consumed, len(data))
        eof = at_end and next_offset >= offset + len(data)
        committed: list[str] = []
        if skip_committed and specs:
            with ThreadPoolExecutor(min(LOOKUP_THREADS, len(specs))) as pool:
                done = list(pool.map(lambda spec: committed_outcome(store, spec.video_id) is not None, specs))
            committed = [spec.video_id for spec, d in zip(specs, done) if d]
            specs = [spec for spec, d in zip(specs, done) if not d]
        return BatchPage(specs=specs, committed=committed, next_offset=next_offset, eof=eof)


@activity.defn(name="closed_videos")
async def closed_videos(video_ids: list[str]) -> list[VideoReport]:
    """Reports for the given in-flight videos whose workflows are no longer running
    (terminated, timed out, or ended without reaching their batch)."""
    client = await connect(runtime().settings)
    reports = []
    for video_id in video_ids:
        try:
            description = await client.get_workflow_handle(video_workflow_id(video_id)).describe()
        except RPCError:
            continue  # not visible yet: check again next time
        status = description.status
        if status is None or status == WorkflowExecutionStatus.RUNNING:
            continue
        if status == WorkflowExecutionStatus.COMPLETED:
            attrs = description.typed_search_attributes
            reports.append(VideoReport(video_id=video_id, state=VideoState.COMPLETED,
                                       audio_s=attrs.get(sa.AUDIO_SECONDS) or 0.0,
                                       gpu_class=attrs.get(sa.GPU_CLASS) or ""))  # fmt: skip
        else:
            error = description.typed_search_attributes.get(sa.ERROR_TYPE) or f"Workflow{status.name.title()}"
            reports.append(VideoReport(video_id=video_id, state=VideoState.FAILED, error_type=error))
    return reports
