"""sweep_work: the declared lifecycle of intermediates (``_work/{video}/``).

A video that failed keeps its intermediates (the download, chunk checkpoints) for
``settings.work_retention_days``, so a retry of the failed videos reuses them; once
nothing of a video's was written for that long, they go. Leftovers of a committed
video (a commit whose cleanup was cut short) go at once. Run daily after the manifest;
the bucket's own lifecycle rule on ``_work/`` (deploy/README.md) is the backstop.

The retention must exceed the longest a video can run (its retry policies bound that
to a few days), so a running video's work is never taken from under it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities.attempts import stage
from activities.runtime import Activities, Runtime
from core.contracts.manifest import SweepResult
from core.store.layout import work_folder

BEAT_EVERY = 1000  # objects listed between two heartbeats


class SweepActivities(Activities):
    @activity.defn
    def sweep_work(self) -> SweepResult:
        return _sweep_work(self.rt)


def _sweep_work(rt: Runtime) -> SweepResult:
    store = rt.store
    root = work_folder(store.prefix)
    cutoff = datetime.now(UTC) - timedelta(days=rt.settings.work_retention_days)
    with stage(rt) as ctx:
        newest: dict[str, datetime] = {}
        keys: dict[str, list[str]] = {}
        for count, (key, modified) in enumerate(store.list_objects(root), 1):
            video_id = key[len(root) :].split("/", 1)[0]
            newest[video_id] = max(newest.get(video_id, modified), modified)
            keys.setdefault(video_id, []).append(key)
            if count % BEAT_EVERY == 0:
                ctx.heart.show({"listed": count})
        result = SweepResult(videos_with_work=len(keys))
        for video_id, video_keys in keys.items():
            committed = store.exists(store.keys(video_id).metadata)
            if not committed and newest[video_id] >= cutoff:
                continue
            for key in video_keys:
                store.delete(key)
            field = "committed_leftovers" if committed else "expired"
            result = result.model_copy(
                update={field: getattr(result, field) + 1, "objects": result.objects + len(video_keys)}
            )
        ctx.log.info("sweep.done", **result.model_dump())
        return result
