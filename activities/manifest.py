"""write_manifest: list the videos completed on a UTC day, write manifests/manifest_{date}.jsonl.

Temporal's visibility store says which VideoWorkflows completed that day; each video's
committed metadata.json supplies the line. A video whose workflow only found earlier
outputs (committed by another run) is left to the manifest of the day it was made, so
every video appears in exactly one manifest.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from temporalio import activity

from activities.runtime import runtime
from core.models import ManifestResult
from core.temporal import connect


@activity.defn(name="write_manifest")
async def write_manifest(day: str) -> ManifestResult:
    rt = runtime()
    store = rt.store
    start = date.fromisoformat(day)
    end = start + timedelta(days=1)
    query = (
        f'WorkflowType = "VideoWorkflow" AND ExecutionStatus = "Completed" '
        f'AND CloseTime >= "{start.isoformat()}T00:00:00Z" AND CloseTime < "{end.isoformat()}T00:00:00Z"'
    )
    client = await connect(rt.settings)
    runs: dict[str, str] = {}
    async for wf in client.list_workflows(query):
        runs[wf.id.removeprefix("video-")] = wf.run_id
        if len(runs) % 500 == 0:
            activity.heartbeat(len(runs))
    lines = []
    for video_id in sorted(runs):
        keys = store.keys(video_id)
        meta = store.get_json_or_none(keys.metadata)
        if meta is None or meta.get("committed_by", {}).get("run_id") != runs[video_id]:
            continue  # committed by an earlier run: in that day's manifest
        lines.append(
            json.dumps(
                {
                    "video_id": video_id,
                    "schema_version": meta["schema_version"],
                    "url": meta["source"]["url"],
                    "duration_s": meta["duration_s"],
                    "num_speakers": meta["num_speakers"],
                    "usable_pct": meta["usable_pct"],
                    "batch_id": meta.get("batch_id"),
                    "outputs": {
                        "audio": keys.original,
                        "metadata": keys.metadata,
                        "embeddings": keys.embeddings,
                        "rttm": keys.rttm,
                        "stats": keys.stats,
                    },
                },
                sort_keys=True,
            )
        )
        if len(lines) % 200 == 0:
            activity.heartbeat(len(lines))
    key = f"{store.prefix}manifests/manifest_{day}.jsonl"
    store.put_bytes(key, ("\n".join(lines) + "\n" if lines else "").encode(), "application/x-ndjson")
    return ManifestResult(date=day, key=key, videos=len(lines))
