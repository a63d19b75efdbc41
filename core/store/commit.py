"""The commit protocol: a video's committed files, then its metadata.json marker.

metadata.json is the commit marker: written last, only if absent, never rewritten; a
video is done iff it exists in the current schema's folder. Before it, the commit
checks what the stage results name (original.wav's sha256, one embedding row per
segment) and creates each committed file only if absent: an earlier try of this same
commit left identical bytes, which are kept.

Attempts of two runs of one video can overlap (a cancelled run's paused worker wakes
while a new run commits), so the commit never deletes or replaces a file another run
may name: where another run's bytes hold a file's usual key, this run creates it under
its own key (``VideoKeys.run_file``) and its marker names that key (``file_keys``).
The marker that wins (If-None-Match) names exactly the bytes of one run; the run that
loses removes what it created and the marker does not name. Nothing is ever written
over a committed video, and the marker records the sha256 of every file.

The commit stage (activities/commit.py) checks its inputs and builds the marker; this
module places the files and writes the marker, and reads it back: whether a video is
committed (``committed_outcome``), and its marker for manifests, exports and reports
(``read_metadata``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from core.contracts import urls
from core.contracts.errors import AttemptSuperseded, IntermediateMismatch, VideoIdConflict
from core.contracts.metadata import Metadata
from core.contracts.video import SCHEMA_VERSION, VideoOutcome, VideoSpec, VideoState
from core.store.layout import VideoKeys
from core.store.objects import ObjectStore

# Creates one committed file at the key given, only if absent: False if something is there.
FileWriter = Callable[[str], bool]


def read_metadata(store: ObjectStore, video_id: str, schema_version: int | None = None) -> Metadata | None:
    """The committed marker of ``video_id`` (in the current schema's folder unless
    ``schema_version`` is given); None if the video is not committed there."""
    keys = store.keys(video_id) if schema_version is None else store.keys(video_id, schema_version)
    data = store.get_json_or_none(keys.metadata)
    return None if data is None else Metadata.model_validate(data)


def outcome_of(metadata: Metadata, keys: VideoKeys) -> VideoOutcome:
    return VideoOutcome(
        video_id=metadata.video_id,
        batch_id=metadata.batch_id or "",
        state=VideoState.DUPLICATE if metadata.duplicate_of else VideoState.COMPLETED,
        duplicate_of=metadata.duplicate_of,
        output_prefix=keys.root,
        metadata_key=keys.metadata,
        duration_s=metadata.duration_s,
        num_speakers=metadata.num_speakers,
        usable_pct=metadata.usable_pct,
    )


def committed_outcome(
    store: ObjectStore, video_id: str, spec: VideoSpec | None = None
) -> VideoOutcome | None:
    """The committed outcome of ``video_id`` if a run (of any batch) finished it.
    Given ``spec``: a video committed from another URL is a VideoIdConflict."""
    metadata = read_metadata(store, video_id)
    if metadata is None or metadata.schema_version != SCHEMA_VERSION:
        return None
    committed = metadata.source  # the URL redacted, and the original's sha256
    if spec is not None and (
        committed is None or not urls.same_source(committed.model_dump(), spec.source_sha256)
    ):
        where = urls.redact_url(committed.url) if committed else "an unnamed source"
        raise VideoIdConflict(
            f"{video_id} is committed from {where}, not {urls.redact_url(spec.url)}: give this URL another id"
        )
    return outcome_of(metadata, store.keys(video_id))


@dataclass
class CommitResult:
    """How a commit ended: ``committed`` (this run's marker), ``committed_meanwhile`` (another
    run's marker appeared while the files were placed) or ``marker_exists`` (another run's
    marker won the race); the outcome is the video's either way."""

    outcome: VideoOutcome
    status: str
    moved: dict[str, str] = field(default_factory=dict)  # name -> this run's own key


def commit_video(
    store: ObjectStore,
    keys: VideoKeys,
    metadata: Metadata,
    files: dict[str, tuple[str, FileWriter]],
    run_id: str,
) -> CommitResult:
    """Place every file (``name -> (sha256, writer)``), then write ``metadata`` naming them
    and their hashes, if no marker is there yet; then drop the video's intermediates."""
    placed = Placement(store, keys, run_id)
    try:
        for name, (sha, create) in files.items():
            placed.place(name, sha, create)
    except AttemptSuperseded:
        return CommitResult(lost_to(store, keys, placed), "committed_meanwhile")
    update: dict[str, object] = {"files": {n: sha for n, (sha, _) in files.items()}}
    if placed.moved:
        update["file_keys"] = placed.moved
    metadata = metadata.model_copy(update=update)
    # last, and only if absent: the commit marker is never rewritten
    if not store.create_json(keys.metadata, metadata.dump()):
        return CommitResult(lost_to(store, keys, placed), "marker_exists", placed.moved)
    store.delete_prefix(keys.work_root)
    return CommitResult(outcome_of(metadata, keys), "committed", placed.moved)


class Placement:
    """Where this run's committed files go: their usual keys, or this run's own keys
    where another run's bytes hold the usual one. Never deletes what it did not create."""

    def __init__(self, store: ObjectStore, keys: VideoKeys, run_id: str) -> None:
        self.store, self.keys, self.run_id = store, keys, run_id
        self.moved: dict[str, str] = {}  # name -> this run's own key
        self.created: dict[str, str] = {}  # key -> sha256, of what this attempt created

    def place(self, name: str, sha256: str, create: Callable[[str], bool]) -> None:
        usual = self.keys.file(name)
        if self._holds(usual, sha256, create):
            return
        if self.store.exists(self.keys.metadata):
            raise AttemptSuperseded(f"{self.keys.video_id} was committed by another run")
        own = self.keys.run_file(self.run_id, name)
        if not self._holds(own, sha256, create):  # this run's inputs are fixed: its bytes are too
            raise IntermediateMismatch(f"{own} holds other bytes than this run commits")
        self.moved[name] = own

    def _holds(self, key: str, sha256: str, create: Callable[[str], bool]) -> bool:
        """Create ``key``, or find these bytes there already: False if others are there."""
        if create(key):
            self.created[key] = sha256
            return True
        try:
            existing, _etag = self.store.sha256(key)
        except KeyError:  # nothing there: the copy's source precondition failed
            raise IntermediateMismatch(f"the source of {key} changed while it was committed") from None
        return existing == sha256


def lost_to(store: ObjectStore, keys: VideoKeys, placed: Placement) -> VideoOutcome:
    """Another run committed: remove what this attempt created that its marker does not
    name, and the intermediates; its outcome is the video's."""
    winner = read_metadata(store, keys.video_id)
    named = (
        {keys.committed_file(winner, name): sha for name, sha in winner.files.items()}
        if winner is not None
        else {}
    )
    for key, sha in placed.created.items():
        if named.get(key) != sha:
            store.delete(key)
    store.delete_prefix(keys.work_root)
    if winner is None:  # a marker of another schema: nothing of this one is committed
        raise AttemptSuperseded(f"{keys.metadata} exists but does not load as schema {SCHEMA_VERSION}")
    return outcome_of(winner, keys)
