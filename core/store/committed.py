"""Reading what a video's commit wrote: its metadata.json, the commit marker.

The marker's model is ``core/contracts/metadata.py``; this is the one reader of it from
storage, for the committed check, manifests, exports and reports.
"""

from __future__ import annotations

from core.contracts.metadata import Metadata
from core.store.objects import ObjectStore


def read_metadata(store: ObjectStore, video_id: str, schema_version: int | None = None) -> Metadata | None:
    """The committed marker of ``video_id`` (in the current schema's folder unless
    ``schema_version`` is given); None if the video is not committed there."""
    keys = store.keys(video_id) if schema_version is None else store.keys(video_id, schema_version)
    data = store.get_json_or_none(keys.metadata)
    return None if data is None else Metadata.model_validate(data)
