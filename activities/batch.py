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

from concurrent.futures import ThreadPoolExecutor

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.attempts import stage
from activities.runtime import Activities, Runtime
from core.contracts import search_attributes as sa
from core.contracts.batch import MAX_PAGE_BYTES, BatchPage, BatchPageRequest
from core.contracts.errors import VideoIdConflict
from core.contracts.ids import video_workflow_id
from core.contracts.search_attributes import Outcome
from core.contracts.video import RowRef, VideoReport, VideoSpec, VideoState
from core.service.temporal import connect
from core.store.batch_input import read_row
from core.store.commit import committed_outcome
from core.store.objects import ObjectStore

BYTES_PER_ROW_GUESS = 256
LOOKUP_THREADS = 16  # parallel metadata.json GETs per page


class BatchActivities(Activities):
    @activity.defn
    def read_batch_page(self, request: BatchPageRequest) -> BatchPage:
        """At most ``max_rows`` rows, and at most MAX_PAGE_BYTES of them as JSON (long URLs
        make short pages): the page and the batch state stay under Temporal's payload limit."""
        return _read_batch_page(self.rt, request)

    @activity.defn
    async def closed_videos(self, video_ids: list[str]) -> list[VideoReport]:
        """Reports for the given in-flight videos whose workflows are no longer running
        (terminated, timed out, or ended without reaching their batch)."""
        return await _closed_videos(self.rt, video_ids)


def _read_batch_page(rt: Runtime, request: BatchPageRequest) -> BatchPage:
    input_key, offset, max_rows, batch_id = (
        request.input_key,
        request.offset,
        request.max_rows,
        request.batch_id,
    )
    store = rt.store
    with stage(rt):
        want = min(max_rows * BYTES_PER_ROW_GUESS, MAX_PAGE_BYTES)
        while True:
            data = store.get_range(input_key, offset, want)
            at_end = len(data) < want
            lines = data.split(b"\n")
            if not at_end:
                lines = lines[:-1]  # the last piece may be a partial row
            specs, used, full = _take_rows(lines, max_rows, batch_id, input_key, offset)
            if full or at_end:
                break
            want *= 2  # rows longer than guessed: read more
        consumed = sum(len(line) + 1 for line in lines[:used])
        next_offset = offset + min(consumed, len(data))
        eof = at_end and next_offset >= offset + len(data)
        committed: list[str] = []
        conflicts: list[str] = []
        if request.skip_committed and specs:
            with ThreadPoolExecutor(min(LOOKUP_THREADS, len(specs))) as pool:
                done = list(pool.map(lambda spec: _committed_as(store, spec), specs))
            committed = [spec.video_id for spec, d in zip(specs, done) if d == _SAME_URL]
            conflicts = [spec.video_id for spec, d in zip(specs, done) if d == _OTHER_URL]
            specs = [spec for spec, d in zip(specs, done) if d != _SAME_URL]
        return BatchPage(
            specs=specs, committed=committed, conflicts=conflicts, next_offset=next_offset, eof=eof
        )


_SAME_URL, _OTHER_URL = "same URL", "other URL"


def _committed_as(store: ObjectStore, spec: VideoSpec) -> str | None:
    """Whether the video is committed, and for which URL. An id committed for another
    URL is a conflict: the batch starts it anyway and its run fails VideoIdConflict,
    visible in the UI, ``starter status`` and the batch's failures."""
    try:
        return _SAME_URL if committed_outcome(store, spec.video_id, spec) is not None else None
    except VideoIdConflict:
        return _OTHER_URL


def _take_rows(
    lines: list[bytes], max_rows: int, batch_id: str, input_key: str, offset: int
) -> tuple[list[VideoSpec], int, bool]:
    """The specs of the leading rows that fit in a page, how many lines they used, and
    whether the page is full (a limit was reached before the lines ran out). Each spec
    carries its URL redacted and its row's place (``offset`` is the first line's): no
    token or password of a URL enters the batch's history."""
    specs: list[VideoSpec] = []
    size = 0
    for used, line in enumerate(lines):
        if len(specs) >= max_rows:
            return specs, used, True
        at, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        spec = read_row(line, batch_id).as_reference(RowRef(input_key=input_key, offset=at))
        cost = len(spec.model_dump_json()) + 1
        if specs and size + cost > MAX_PAGE_BYTES:  # the first row always fits (core.contracts.batch)
            return specs, used, True
        specs.append(spec)
        size += cost
    return specs, len(lines), len(specs) >= max_rows


async def _closed_videos(rt: Runtime, video_ids: list[str]) -> list[VideoReport]:
    client = await connect(rt.settings)
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
            duplicate = attrs.get(sa.PIPELINE_STAGE) == Outcome.DUPLICATE
            reports.append(
                VideoReport(
                    video_id=video_id,
                    state=VideoState.DUPLICATE if duplicate else VideoState.COMPLETED,
                    audio_s=attrs.get(sa.AUDIO_SECONDS) or 0.0,
                    gpu_class=attrs.get(sa.GPU_CLASS) or "",
                )
            )
        else:
            error = description.typed_search_attributes.get(sa.ERROR_TYPE) or f"Workflow{status.name.title()}"
            reports.append(VideoReport(video_id=video_id, state=VideoState.FAILED, error_type=error))
    return reports
