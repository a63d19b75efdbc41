"""read_batch_page: the next rows of a batch's validated CSV, by byte offset.

The starter validated and uploaded the CSV; the BatchWorkflow reads it a page at a
time (a ranged GET), so neither the workflow history nor any payload holds the whole
list. A page ends at a row boundary; ``next_offset`` is where the next page starts.
"""

from __future__ import annotations

import csv
import io

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.runtime import runtime, stage
from core.models import BatchPage, VideoReport, VideoSpec, VideoState
from core.temporal import connect
from workflows import search_attributes as sa

BYTES_PER_ROW_GUESS = 256


@activity.defn(name="read_batch_page")
def read_batch_page(input_key: str, offset: int, max_rows: int, batch_id: str) -> BatchPage:
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
        return BatchPage(specs=specs, next_offset=next_offset, eof=eof)


@activity.defn(name="closed_videos")
async def closed_videos(video_ids: list[str]) -> list[VideoReport]:
    """Reports for the given in-flight videos whose workflows are no longer running
    (terminated, timed out, or ended without reaching their batch)."""
    client = await connect(runtime().settings)
    reports = []
    for video_id in video_ids:
        try:
            description = await client.get_workflow_handle(f"video-{video_id}").describe()
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
