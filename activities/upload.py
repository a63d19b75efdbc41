"""The committed outputs: finalize_outputs, and committed_outcome (is a video done?).

metadata.json is the commit marker: it is written last, never rewritten, and a video
is done iff it exists with the current schema_version. Finalizing twice (a retry after
a crash between the write and the reply) returns what the first run committed.
"""

from __future__ import annotations

from temporalio import activity

from activities.runtime import runtime, stage
from core import outputs
from core.models import (
    SCHEMA_VERSION,
    FinalizeRequest,
    MusicRegion,
    Segment,
    VideoOutcome,
    VideoState,
)
from core.storage import ObjectStore, VideoKeys


def _outcome(metadata: dict, keys: VideoKeys) -> VideoOutcome:
    return VideoOutcome(
        video_id=metadata["video_id"],
        batch_id=metadata["batch_id"],
        state=VideoState.COMPLETED,
        output_prefix=keys.root,
        metadata_key=keys.metadata,
        duration_s=metadata["duration_s"],
        num_speakers=metadata["num_speakers"],
        usable_pct=metadata["usable_pct"],
    )


def committed_outcome(store: ObjectStore, video_id: str) -> VideoOutcome | None:
    """The committed outcome of ``video_id`` if a run (of any batch) finished it."""
    keys = store.keys(video_id)
    metadata = store.get_json_or_none(keys.metadata)
    if metadata is None or metadata.get("schema_version") != SCHEMA_VERSION:
        return None
    return _outcome(metadata, keys)


@activity.defn(name="finalize_outputs")
def finalize_outputs(req: FinalizeRequest) -> VideoOutcome:
    rt = runtime()
    store = rt.store
    keys = store.keys(req.spec.video_id)
    with stage("upload", req.spec.video_id) as ctx:
        log = ctx.log
        committed = committed_outcome(store, req.spec.video_id)
        if committed is not None:
            log.info("upload.already_committed")
            return committed

        diarization = store.get_json(req.diarization.key)
        segments = [Segment(**s) for s in diarization["segments"]]
        uncertain = [(s, e) for s, e in diarization.get("uncertain", [])]
        music = [MusicRegion(**m) for m in store.get_json(req.music.key)["regions"]]
        centroids = store.get_json(req.embeddings.centroids_key)["centroids"]
        metadata = outputs.build_metadata(req, segments, music, centroids, rt.settings.min_usable_s, uncertain)
        info = activity.info()
        metadata["committed_by"] = {"workflow_id": info.workflow_id, "run_id": info.workflow_run_id}

        store.put_bytes(keys.embeddings, store.get_bytes(req.embeddings.key))
        store.put_bytes(keys.rttm, outputs.build_rttm(req.spec.video_id, segments).encode(), "text/plain")
        store.put_json(keys.stats, outputs.build_stats(req))
        # last, and only if absent: the commit marker is never rewritten
        if not store.create_json(keys.metadata, metadata):
            log.warning("upload.commit_exists")
            metadata = store.get_json(keys.metadata)
        store.delete_prefix(keys.work_root)
        ctx.audio_s = req.audio.duration_s
        return _outcome(metadata, keys)

