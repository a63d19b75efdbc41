"""What a video or batch id may be.

An id becomes a storage prefix and a workflow id, so it is held to a short, plain
alphabet, and it may not name one of the bucket's own top-level folders: a video
called ``_work`` would put its files among every video's intermediates. The folder
names live here for that check; ``core/layout.py`` spells the keys under them.
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
RESERVED_IDS = frozenset({WORK_FOLDER, BATCHES_FOLDER, PROBE_FOLDER, MANIFESTS_FOLDER, EXPORTS_FOLDER})


def validate_video_id(value: str) -> str:
    """A video id becomes a storage prefix and a workflow id: nothing that could escape it."""
    if not VIDEO_ID_PATTERN.fullmatch(value):
        raise ValueError(f"video_id must be 1-64 characters of A-Z a-z 0-9 _ - (got {value!r})")
    if value in RESERVED_IDS:
        raise ValueError(
            f"{value!r} names a storage folder of the pipeline ({', '.join(sorted(RESERVED_IDS))})"
        )
    return value
