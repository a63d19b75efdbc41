"""Workflow ids and workflow type names: the one place that spells them (queues are in
``core/queues.py``, search attributes in ``core/search_attributes.py``).

A video's id is the same in every batch, so Temporal's id reuse policy keeps a video to
one run; a batch's and an export's ids name what the operator started. The type names
are what visibility queries filter on (``WorkflowType = "VideoWorkflow"``).
"""

from __future__ import annotations

VIDEO_WORKFLOW = "VideoWorkflow"
BATCH_WORKFLOW = "BatchWorkflow"
EXPORT_WORKFLOW = "ExportWorkflow"
MANIFEST_WORKFLOW = "ManifestWorkflow"

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
