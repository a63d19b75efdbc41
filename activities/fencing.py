"""Writes of one activity attempt: under its own keys, and never after its video is committed.

Temporal runs an activity at least once, and attempts overlap: a worker that paused
past its heartbeat timeout wakes up while the retry is already working. So

- every attempt writes its results under its own ``attempt_id`` (DESIGN.md's fenced
  keys), and the stage result it returns names those exact keys: the next stage reads
  what this attempt made, never a neighbour's file that happens to share a name;
- before each write the attempt checks that Temporal still wants it (a cancelled or
  timed-out attempt stops), and after each write that its video is not committed: if
  it is, the late write is removed again and the attempt stops. The commit deletes
  ``_work/{video}/`` after writing its marker, so a write either lands before that
  cleanup lists the folder, or sees the marker and removes itself: nothing resurrects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import CancelledError

from core.contracts.errors import AttemptSuperseded
from core.store.layout import VideoKeys
from core.store.objects import ObjectStore


def attempt_id() -> str:
    """Unique per attempt of this activity, readable in a key listing: run, activity, try."""
    info = activity.info()
    return f"{info.workflow_run_id[:8]}-{info.activity_id}-{info.attempt}"


def reusable_result(store: ObjectStore, folder: str, name: str) -> Any | None:
    """A finished result ``name`` of any earlier attempt in ``folder`` (its reply may
    have been lost): a stage whose input has not changed does not redo the work."""
    found = sorted(k for k in store.list_keys(folder) if k.endswith(f"/{name}"))
    return store.get_json(found[0]) if found else None


class FencedWrites:
    """The only way an activity writes intermediates (see the module docstring)."""

    def __init__(self, store: ObjectStore, keys: VideoKeys):
        self.store = store
        self.keys = keys

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._checked(key, lambda: self.store.put_bytes(key, data, content_type))

    def put_json(self, key: str, value: Any) -> None:
        body = json.dumps(value, indent=1).encode()
        self._checked(key, lambda: self.store.put_bytes(key, body, "application/json"))

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None:
        self._checked(key, lambda: self.store.put_file(key, path, content_type))

    def _checked(self, key: str, write) -> None:
        if activity.in_activity() and activity.is_cancelled():
            raise CancelledError("attempt cancelled: Temporal gave it up, another attempt owns the video")
        write()
        if self.store.exists(self.keys.metadata):
            self.store.delete(key)
            raise AttemptSuperseded(f"{self.keys.video_id} was committed meanwhile; removed late write {key}")
