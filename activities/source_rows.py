"""The URL a download fetches: read from the batch's stored input, never from a payload.

A batch hands each video its URL redacted, with the place of its row in the batch's
input (``core.contracts.video.VideoSpec.as_reference``), so a token or a password in a URL is
never stored in Temporal's history nor shown in the Web UI. The download reads the row
back here, on the worker, and checks it is the row the payload names.
"""

from __future__ import annotations

from core.contracts.errors import IntermediateMismatch
from core.contracts.video import MAX_URL_LENGTH, VideoSpec
from core.store.batch_input import read_row
from core.store.objects import ObjectStore

# a stored row: id, the URL (CSV may double its quotes) and a duration
MAX_ROW_BYTES = 2 * MAX_URL_LENGTH + 256


def source_url(store: ObjectStore, spec: VideoSpec) -> str:
    """The real URL of ``spec`` (a spec built without a row carries it itself)."""
    if spec.row is None:
        return spec.url
    data = store.get_range(spec.row.input_key, spec.row.offset, MAX_ROW_BYTES)
    stored = read_row(data.split(b"\n", 1)[0], spec.batch_id)
    if stored.video_id != spec.video_id or stored.source_sha256 != spec.url_sha256:
        raise IntermediateMismatch(
            f"{spec.row.input_key} at byte {spec.row.offset} holds {stored.video_id}, "
            f"not the row of {spec.video_id} this run was given"
        )
    return stored.url
