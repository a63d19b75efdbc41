"""Ids: what a video or batch id may be, and the workflow ids, type names, signals and
queries built from them (queues are in ``core/contracts/queues.py``, search attributes
in ``core/contracts/search_attributes.py``).

An id becomes a storage prefix and a workflow id, so it is held to a short, plain
alphabet, and it may not name one of the bucket's own top-level folders: a video
called ``_work`` would put its files among every video's intermediates. The folder
names live here for that check; ``core/store/layout.py`` spells the keys under them.

A video's workflow id is the same in every batch, so Temporal's id reuse policy keeps a
video to one run; a batch's and an export's ids name what the operator started. The type
names are what visibility queries filter on (``WorkflowType = "VideoWorkflow"``).
"""

from __future__ import annotations

import re

VIDEO_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ID_LENGTH = 64  # video and batch ids (VIDEO_ID_PATTERN)

# The bucket's top-level folders that are not videos. A video id equal to one would
# put a video's files among them: such ids are refused.
WORK_FOLDER = "_work"  # intermediates and checkpoints
BATCHES_FOLDER = "_batches"  # each batch's validated input
PROBE_FOLDER = "_probe"  # the start-up check of conditional writes
MANIFESTS_FOLDER = "manifests"
EXPORTS_FOLDER = "exports"
CORPUS_FOLDER = "corpus"  # what spans videos: the speakers across them
RESERVED_IDS = frozenset(
    {WORK_FOLDER, BATCHES_FOLDER, PROBE_FOLDER, MANIFESTS_FOLDER, EXPORTS_FOLDER, CORPUS_FOLDER}
)


def validate_video_id(value: str) -> str:
    """A video id becomes a storage prefix and a workflow id: nothing that could escape it."""
    if not VIDEO_ID_PATTERN.fullmatch(value):
        raise ValueError(f"video_id must be 1-64 characters of A-Z a-z 0-9 _ - (got {value!r})")
    if value in RESERVED_IDS:
        raise ValueError(
            f"{value!r} names a storage folder of the pipeline ({', '.join(sorted(RESERVED_IDS))})"
        )
    return value


VIDEO_WORKFLOW = "VideoWorkflow"
BATCH_WORKFLOW = "BatchWorkflow"
EXPORT_WORKFLOW = "ExportWorkflow"
MANIFEST_WORKFLOW = "ManifestWorkflow"
SPEAKER_INDEX_WORKFLOW = "SpeakerIndexWorkflow"

# signals and queries by name: the workflows declare them, the video, the starter and
# the `temporal` CLI send them
VIDEO_DONE_SIGNAL = "video_done"  # a video tells its batch how it ended
SOURCE_TROUBLE_SIGNAL = "source_trouble"  # a video tells its batch the source pushed back
PAUSE_SIGNAL = "pause"
RESUME_SIGNAL = "resume"
PROGRESS_QUERY = "progress"  # a batch's or an export's
STATUS_QUERY = "status"  # a video's

VIDEO_PREFIX = "video-"


def video_workflow_id(video_id: str) -> str:
    return f"{VIDEO_PREFIX}{video_id}"


def video_id_of(workflow_id: str) -> str:
    """The video a VideoWorkflow's id names."""
    return workflow_id.removeprefix(VIDEO_PREFIX)


def batch_workflow_id(batch_id: str) -> str:
    return f"batch-{batch_id}"


def dry_run_workflow_id(batch_id: str) -> str:
    """A dry run's own BatchWorkflow: it never holds the batch's id, so a real start
    after it (or while it still pages) starts the batch. Batch ids cannot hold a dot."""
    return f"batch-{batch_id}.dry-run"


def export_workflow_id(batch_id: str, export_name: str) -> str:
    """``export_name``: the export's folder under its batch (``ExportSpec.name``)."""
    return f"export-{batch_id}-{export_name.replace('/', '-')}"
