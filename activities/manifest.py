"""write_manifest: list the videos completed on a UTC day, write manifests/manifest_{date}.jsonl.

Temporal's visibility store says which VideoWorkflows completed that day; each video's
committed metadata.json supplies the line. A video whose workflow only found earlier
outputs (committed by another run) is left to the manifest of the day it was made, so
every video appears in exactly one manifest.

The activity is async (the Temporal client's listing is), so it runs on the worker's
event loop, beside workflow tasks and heartbeats: every storage call it makes runs in
threads (``asyncio.to_thread``, a small pool for the metadata reads), never on the loop.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

from temporalio import activity

from activities.runtime import Activities, Runtime
from core.contracts.ids import VIDEO_WORKFLOW, video_id_of
from core.contracts.manifest import ManifestResult
from core.contracts.metadata import Metadata
from core.contracts.urls import redact_url
from core.service.temporal import connect
from core.store.commit import read_metadata
from core.store.layout import EMBEDDINGS_NPY, ORIGINAL_WAV, RTTM, STATS_JSON, manifest_key

LOOKUP_THREADS = 16  # parallel metadata.json GETs
READS_PER_STEP = 200  # metadata reads between two heartbeats


class ManifestActivities(Activities):
    @activity.defn
    async def write_manifest(self, day: str) -> ManifestResult:
        return await _write_manifest(self.rt, day)


async def _write_manifest(rt: Runtime, day: str) -> ManifestResult:
    store = await asyncio.to_thread(lambda: rt.store)  # the first use builds a boto3 client
    start = date.fromisoformat(day)
    end = start + timedelta(days=1)
    query = (
        f'WorkflowType = "{VIDEO_WORKFLOW}" AND ExecutionStatus = "Completed" '
        f'AND CloseTime >= "{start.isoformat()}T00:00:00Z" AND CloseTime < "{end.isoformat()}T00:00:00Z"'
    )
    client = await connect(rt.settings)
    runs: dict[str, str] = {}
    async for wf in client.list_workflows(query):
        runs[video_id_of(wf.id)] = wf.run_id
        if len(runs) % 500 == 0:
            activity.heartbeat(len(runs))
    lines = []
    video_ids = sorted(runs)
    with ThreadPoolExecutor(LOOKUP_THREADS) as pool:

        def read(ids: list[str]) -> list[Metadata | None]:  # in a thread: blocking GETs
            return list(pool.map(lambda video_id: read_metadata(store, video_id), ids))

        for first in range(0, len(video_ids), READS_PER_STEP):
            step = video_ids[first : first + READS_PER_STEP]
            for video_id, meta in zip(step, await asyncio.to_thread(read, step)):
                if meta is None or meta.committed_run_id != runs[video_id]:
                    continue  # committed by an earlier run: in that day's manifest
                lines.append(_line(store, video_id, meta))
            activity.heartbeat(len(lines))
    key = manifest_key(store.prefix, day)
    body = ("\n".join(lines) + "\n" if lines else "").encode()
    await asyncio.to_thread(store.put_bytes, key, body, "application/x-ndjson")
    return ManifestResult(date=day, key=key, videos=len(lines))


def _line(store, video_id: str, meta: Metadata) -> str:
    """The manifest line of a video committed by the run that completed that day."""
    keys = store.keys(video_id)
    outputs = {"metadata": keys.metadata}
    if not meta.duplicate_of:  # a Duplicate commits its marker alone: the original's files are its audio
        outputs |= {
            "audio": keys.committed_file(meta, ORIGINAL_WAV),
            "embeddings": keys.committed_file(meta, EMBEDDINGS_NPY),
            "rttm": keys.committed_file(meta, RTTM),
            "stats": keys.committed_file(meta, STATS_JSON),
        }
    return json.dumps(
        {
            "video_id": video_id,
            "schema_version": meta.schema_version,
            # commits before redaction stored the URL whole
            "url": redact_url(meta.source.url) if meta.source else None,
            "duration_s": meta.duration_s,
            "num_speakers": meta.num_speakers,
            "usable_pct": meta.usable_pct,
            "batch_id": meta.batch_id,
            "duplicate_of": meta.duplicate_of,
            "outputs": outputs,
        },
        sort_keys=True,
    )
