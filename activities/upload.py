"""The commit: finalize_outputs, and committed_outcome (is a video done?).

metadata.json is the commit marker: written last, only if absent, never rewritten; a
video is done iff it exists in the current schema's folder. Before it, the commit
checks what the stage results name (original.wav's sha256, one embedding row per
segment) and creates each committed file only if absent: an earlier try of this same
commit left identical bytes, which are kept; anything else under an unwritten marker
is an orphan of a commit that never finished, and is replaced. Nothing is ever
written over a committed video, and the marker records the sha256 of every file.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
from temporalio import activity

from activities.runtime import Activities, Runtime, stage
from core import faults, outputs, sources
from core.errors import AttemptSuperseded, IntermediateMismatch, StorageUnavailable, VideoIdConflict
from core.layout import VideoKeys
from core.metadata import CommittedBy, Metadata, read_metadata
from core.models import (
    SCHEMA_VERSION,
    FinalizeRequest,
    MusicRegion,
    Segment,
    VideoOutcome,
    VideoSpec,
    VideoState,
)
from core.stages import Stage
from core.storage import ObjectStore


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


def committed_outcome(store: ObjectStore, video_id: str, url: str | None = None) -> VideoOutcome | None:
    """The committed outcome of ``video_id`` if a run (of any batch) finished it.
    Given ``url``: a video committed from another URL is a VideoIdConflict."""
    metadata = read_metadata(store, video_id)
    if metadata is None or metadata.schema_version != SCHEMA_VERSION:
        return None
    committed = metadata.source  # the URL redacted, and the original's sha256
    if url is not None and (committed is None or not sources.same_source(committed.model_dump(), url)):
        where = sources.redact_url(committed.url) if committed else "an unnamed source"
        raise VideoIdConflict(
            f"{video_id} is committed from {where}, not {sources.redact_url(url)}: give this URL another id"
        )
    return _outcome(metadata, store.keys(video_id))


class CommitActivities(Activities):
    @activity.defn
    def committed_video(self, spec: VideoSpec) -> VideoOutcome | None:
        """Asked first by every VideoWorkflow: a video committed earlier is not redone."""
        with stage(self.rt, video_id=spec.video_id):
            return committed_outcome(self.rt.store, spec.video_id, spec.url)

    @activity.defn
    def finalize_outputs(self, req: FinalizeRequest) -> VideoOutcome:
        return _finalize_outputs(self.rt, req)


def _finalize_outputs(rt: Runtime, req: FinalizeRequest) -> VideoOutcome:
    store = rt.store
    video_id = req.spec.video_id
    keys = store.keys(video_id)
    with stage(rt, Stage.UPLOAD, video_id) as ctx:
        faults.stall("upload")
        committed = committed_outcome(store, video_id, req.spec.url)
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
        files = {
            keys.embeddings: (vectors, "application/octet-stream"),
            keys.rttm: (outputs.build_rttm(video_id, segments).encode(), "text/plain"),
            keys.stats: (json.dumps(outputs.build_stats(req), indent=1).encode(), "application/json"),
        }
        try:
            _create(
                store,
                keys,
                keys.original,
                sha256,
                lambda: store.copy_new(req.audio.original_key, keys.original, etag),
            )
            for key, (data, content_type) in files.items():
                _create(
                    store,
                    keys,
                    key,
                    _sha256(data),
                    lambda k=key, d=data, t=content_type: store.create_bytes(k, d, t),
                )
        except AttemptSuperseded:
            ctx.log.info("upload.committed_meanwhile")
            store.delete_prefix(keys.work_root)
            return committed_outcome(store, video_id)
        recorded = {
            "original.wav": sha256,
            **{key.rsplit("/", 1)[1]: _sha256(data) for key, (data, _) in files.items()},
        }
        metadata = metadata.model_copy(update={"committed_by": committed_by, "files": recorded})
        # last, and only if absent: the commit marker is never rewritten
        if not store.create_json(keys.metadata, metadata.dump()):
            ctx.log.warning("upload.commit_exists")
            metadata = Metadata.model_validate(store.get_json(keys.metadata))
        store.delete_prefix(keys.work_root)
        ctx.audio_s = req.audio.duration_s
        return _outcome(metadata, keys)


def _create(store: ObjectStore, keys: VideoKeys, key: str, sha256: str, create) -> None:
    """Create one committed file (see the module docstring for what an existing one means)."""
    for _ in range(2):
        if create():
            return
        try:
            existing, _etag = store.sha256(key)
        except KeyError:  # nothing there: the copy's source precondition failed
            raise IntermediateMismatch(f"the source of {key} changed while it was committed") from None
        if existing == sha256:
            return
        if store.exists(keys.metadata):
            raise AttemptSuperseded(f"{keys.video_id} was committed by another run")
        store.delete(key)
    raise StorageUnavailable(f"{key}: another writer keeps recreating it")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
