"""The commit stage: check what the stage results name, build the video's metadata.json,
and commit it with its files (``core/store/commit.py``, the protocol); a Duplicate's
marker alone; and the committed check every VideoWorkflow asks first."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
from temporalio import activity

from activities.attempts import stage
from activities.runtime import Activities, Runtime
from core.contracts.errors import IntermediateMismatch
from core.contracts.metadata import CommittedBy, LanguageHeard
from core.contracts.rttm import rttm_text
from core.contracts.stages import Stage
from core.contracts.video import (
    CommitRequest,
    DuplicateCommitRequest,
    MusicRegion,
    Segment,
    VideoOutcome,
    VideoSpec,
)
from core.service import faults
from core.store import layout, outputs
from core.store.commit import FileWriter, commit_video, committed_outcome


class CommitActivities(Activities):
    @activity.defn
    def committed_video(self, spec: VideoSpec) -> VideoOutcome | None:
        """Asked first by every VideoWorkflow: a video committed earlier is not redone."""
        with stage(self.rt, video_id=spec.video_id):
            return committed_outcome(self.rt.store, spec.video_id, spec)

    @activity.defn
    def commit_outputs(self, req: CommitRequest) -> VideoOutcome:
        return _commit_outputs(self.rt, req)

    @activity.defn
    def commit_duplicate(self, req: DuplicateCommitRequest) -> VideoOutcome:
        return _commit_duplicate(self.rt, req)

    @activity.defn(name="finalize_outputs")
    def commit_outputs_under_old_name(self, req: CommitRequest) -> VideoOutcome:
        """The commit under the name runs started before 2026-12-07 call it by
        (workflows/video.py, patch COMMIT_NAME): served until none of them is open."""
        return _commit_outputs(self.rt, req)


def _commit_outputs(rt: Runtime, req: CommitRequest) -> VideoOutcome:
    store = rt.store
    video_id = req.spec.video_id
    keys = store.keys(video_id)
    with stage(rt, Stage.COMMIT, video_id) as ctx:
        faults.stall("commit")
        committed = committed_outcome(store, video_id, req.spec)
        if committed is not None:  # an earlier try committed; its cleanup may have been cut short
            ctx.log.info("commit.already_committed")
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

        labelled = store.get_json(req.labels.key) if req.labels else {}
        labels = labelled["labels"] if req.labels else None
        # labels results from before the language head have no "language"
        language = LanguageHeard.model_validate(labelled["language"]) if "language" in labelled else None
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
            language,
        )
        info = activity.info()
        files: dict[str, tuple[str, FileWriter]] = {
            layout.ORIGINAL_WAV: (sha256, lambda key: store.copy_new(req.audio.original_key, key, etag))
        }
        for name, data, content_type in (
            (layout.EMBEDDINGS_NPY, vectors, "application/octet-stream"),
            (layout.RTTM, rttm_text(video_id, segments).encode(), "text/plain"),
            (layout.STATS_JSON, json.dumps(outputs.build_stats(req), indent=1).encode(), "application/json"),
        ):
            files[name] = (_sha256(data), lambda key, d=data, t=content_type: store.create_bytes(key, d, t))
        metadata = metadata.model_copy(update={"committed_by": _committed_by()})
        result = commit_video(store, keys, metadata, files, info.workflow_run_id)
        if result.status == "committed_meanwhile":
            ctx.log.info("commit.committed_meanwhile")
        elif result.status == "marker_exists":
            ctx.log.warning("commit.marker_exists")
        if result.moved:
            ctx.log.warning(
                "commit.files_moved", files=sorted(result.moved), reason="another run's bytes held their keys"
            )
        if result.status == "committed":
            ctx.audio_s = req.audio.duration_s
        return result.outcome


def _commit_duplicate(rt: Runtime, req: DuplicateCommitRequest) -> VideoOutcome:
    """A Duplicate's marker: nothing else is committed, and its download is dropped."""
    store, video_id = rt.store, req.spec.video_id
    with stage(rt, Stage.COMMIT, video_id) as ctx:
        committed = committed_outcome(store, video_id, req.spec)
        if committed is not None:
            store.delete_prefix(store.keys(video_id).work_root)
            return committed
        metadata = outputs.duplicate_metadata(req).model_copy(update={"committed_by": _committed_by()})
        result = commit_video(store, store.keys(video_id), metadata, {}, activity.info().workflow_run_id)
        ctx.log.info("commit.duplicate", duplicate_of=req.claim.duplicate_of, status=result.status)
        return result.outcome


def _committed_by() -> CommittedBy:
    """The workflow run this commit is for (the marker records it)."""
    info = activity.info()
    return CommittedBy(workflow_id=info.workflow_id, run_id=info.workflow_run_id)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
