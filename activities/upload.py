"""The committed outputs: lookup_completed (skip finished videos) and finalize_outputs.

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


def _outcome(metadata: dict, state: VideoState, metadata_key: str, root: str) -> VideoOutcome:
    return VideoOutcome(
        video_id=metadata["video_id"],
        batch_id=metadata["batch_id"],
        state=state,
        output_prefix=root,
        metadata_key=metadata_key,
        duration_s=metadata["duration_s"],
        num_speakers=metadata["num_speakers"],
        usable_pct=metadata["usable_pct"],
    )


@activity.defn(name="lookup_completed")
def lookup_completed(video_id: str) -> VideoOutcome | None:
    """The committed outcome of ``video_id`` if an earlier run (any batch) finished it."""
    rt = runtime()
    keys = rt.store.keys(video_id)
    with stage("lookup"):
        metadata = rt.store.get_json_or_none(keys.metadata)
        if metadata is None or metadata.get("schema_version") != SCHEMA_VERSION:
            return None
        return _outcome(metadata, VideoState.ALREADY_COMPLETED, keys.metadata, keys.root)


@activity.defn(name="finalize_outputs")
def finalize_outputs(req: FinalizeRequest) -> VideoOutcome:
    rt = runtime()
    store = rt.store
    keys = store.keys(req.spec.video_id)
    with stage("upload") as ctx:
        log = ctx.log
        committed = store.get_json_or_none(keys.metadata)
        if committed is not None and committed.get("schema_version") == SCHEMA_VERSION:
            log.info("upload.already_committed")
            return _outcome(committed, VideoState.COMPLETED, keys.metadata, keys.root)

        segments = [Segment(**s) for s in store.get_json(req.diarization.key)["segments"]]
        music = [MusicRegion(**m) for m in store.get_json(req.music.key)["regions"]]
        centroids = store.get_json(req.embeddings.centroids_key)["centroids"]
        metadata = outputs.build_metadata(req, segments, music, centroids, rt.settings.min_usable_s)
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
        return _outcome(metadata, VideoState.COMPLETED, keys.metadata, keys.root)

