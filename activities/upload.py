"""The commit: finalize_outputs, and committed_outcome (is a video done?).

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
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable

import numpy as np
from temporalio import activity

from activities.attempts import stage
from activities.runtime import Activities, Runtime
from core.contracts import urls
from core.contracts.errors import AttemptSuperseded, IntermediateMismatch, VideoIdConflict
from core.contracts.metadata import CommittedBy, Metadata
from core.contracts.rttm import rttm_text
from core.contracts.stages import Stage
from core.contracts.video import (
    SCHEMA_VERSION,
    FinalizeRequest,
    MusicRegion,
    Segment,
    VideoOutcome,
    VideoSpec,
    VideoState,
)
from core.service import faults
from core.store import layout, outputs
from core.store.committed import read_metadata
from core.store.layout import VideoKeys
from core.store.objects import ObjectStore


def _outcome(metadata: Metadata, keys: VideoKeys) -> VideoOutcome:
    return VideoOutcome(
        video_id=metadata.video_id,
        batch_id=metadata.batch_id or "",
        state=VideoState.COMPLETED,
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
    return _outcome(metadata, store.keys(video_id))


class CommitActivities(Activities):
    @activity.defn
    def committed_video(self, spec: VideoSpec) -> VideoOutcome | None:
        """Asked first by every VideoWorkflow: a video committed earlier is not redone."""
        with stage(self.rt, video_id=spec.video_id):
            return committed_outcome(self.rt.store, spec.video_id, spec)

    @activity.defn
    def finalize_outputs(self, req: FinalizeRequest) -> VideoOutcome:
        return _finalize_outputs(self.rt, req)


def _finalize_outputs(rt: Runtime, req: FinalizeRequest) -> VideoOutcome:
    store = rt.store
    video_id = req.spec.video_id
    keys = store.keys(video_id)
    with stage(rt, Stage.UPLOAD, video_id) as ctx:
        faults.stall("upload")
        committed = committed_outcome(store, video_id, req.spec)
        if committed is not None:  # an earlier try committed; its cleanup may have been cut short
            ctx.log.info("upload.already_committed")
            store.delete_prefix(keys.work_root)
            return committed

        diarization = store.get_json(req.diarization.key)
        segments = [Segment(**s) for s in diarization["segments"]]
        uncertain = [(s, e) for s, e in diarization.get("uncertain", [])]
        music = [MusicRegion(**m) for m in store.get_json(req.music.key)["regions"]]
        centroids = store.get_json(req.embeddings.centroids_key)["centroids"]
        vectors = store.get_bytes(req.embeddings.key)
        rows = np.load(io.BytesIO(vectors)).shape[0]
        if rows != len(segments) or req.embeddings.num_segments != len(segments):
            raise IntermediateMismatch(
                f"{req.embeddings.key} has {rows} rows for {len(segments)} segments in {req.diarization.key}"
            )
        sha256, etag = store.sha256(req.audio.original_key)
        if sha256 != req.audio.sha256:
            raise IntermediateMismatch(
                f"{req.audio.original_key}: sha256 {sha256} is not the downloaded {req.audio.sha256}"
            )

        labels = store.get_json(req.labels.key)["labels"] if req.labels else None
        if labels is not None and len(labels) != len(segments):
            raise IntermediateMismatch(
                f"{req.labels.key} has {len(labels)} rows for {len(segments)} segments"
            )
        metadata = outputs.metadata_model(
            req,
            segments,
            music,
            centroids,
            outputs.UsableRules(rt.settings.min_usable_s, rt.settings.usable_policy),
            uncertain,
            labels,
        )
        info = activity.info()
        committed_by = CommittedBy(workflow_id=info.workflow_id, run_id=info.workflow_run_id)
        files: dict[str, tuple[str, Callable[[str], bool]]] = {
            layout.ORIGINAL_WAV: (sha256, lambda key: store.copy_new(req.audio.original_key, key, etag))
        }
        for name, data, content_type in (
            (layout.EMBEDDINGS_NPY, vectors, "application/octet-stream"),
            (layout.RTTM, rttm_text(video_id, segments).encode(), "text/plain"),
            (layout.STATS_JSON, json.dumps(outputs.build_stats(req), indent=1).encode(), "application/json"),
        ):
            files[name] = (_sha256(data), lambda key, d=data, t=content_type: store.create_bytes(key, d, t))
        placed = _Placement(store, keys, info.workflow_run_id)
        try:
            for name, (sha, create) in files.items():
                placed.place(name, sha, create)
        except AttemptSuperseded:
            ctx.log.info("upload.committed_meanwhile")
            return _lost_to(store, keys, placed)
        update: dict[str, object] = {
            "committed_by": committed_by,
            "files": {n: sha for n, (sha, _) in files.items()},
        }
        if placed.moved:
            update["file_keys"] = placed.moved
            ctx.log.warning(
                "upload.files_moved", files=sorted(placed.moved), reason="another run's bytes held their keys"
            )
        metadata = metadata.model_copy(update=update)
        # last, and only if absent: the commit marker is never rewritten
        if not store.create_json(keys.metadata, metadata.dump()):
            ctx.log.warning("upload.commit_exists")
            return _lost_to(store, keys, placed)
        store.delete_prefix(keys.work_root)
        ctx.audio_s = req.audio.duration_s
        return _outcome(metadata, keys)


class _Placement:
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


def _lost_to(store: ObjectStore, keys: VideoKeys, placed: _Placement) -> VideoOutcome:
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
    return _outcome(winner, keys)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
