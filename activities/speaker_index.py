"""link_speakers: give the local speakers of newly committed videos their global ids.

It reads the last committed linking run (its index and members), the videos the request
names that no run linked yet (their metadata.json and embeddings.npy), links them in
video id order (core/corpus/speakers.py) and commits the next run: its files under an
attempt folder of their own (the index, members, the run's rows of the corpus table,
every global speaker's clean speech so far) and each video's rows beside the video's id
under the attempt's name (core/store/speaker_lookup.py reads them), then run.json, only
if absent. Two overlapping attempts (or
two requests) cannot both commit run n: the loser reloads and links on top of the winner.
A run that finds nothing new commits nothing, so a repeated request changes nothing.

Async, like write_manifest: the Temporal client's listing is; storage reads and the
linking run in threads, with heartbeats between steps.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import activity

from activities.runtime import Activities, Runtime
from activities.scratch import scratch_dir
from core.contracts import search_attributes as sa
from core.contracts.corpus import SpeakerIndexRequest, SpeakerIndexResult, SpeakerRow, SpeakerRun
from core.contracts.ids import VIDEO_WORKFLOW, video_id_of
from core.contracts.metadata import Metadata
from core.service.temporal import connect
from core.store.commit import read_metadata
from core.store.layout import (
    EMBEDDINGS_NPY,
    SPEAKER_INDEX_FAISS,
    SPEAKER_LINKS_JSONL,
    SPEAKER_MEMBERS_JSON,
    SPEAKER_TOTALS_JSON,
    manifest_key,
    manifests_folder,
    speaker_run_key,
    video_speakers_key,
)
from core.store.objects import ObjectStore
from core.store.speaker_lookup import run_markers

if TYPE_CHECKING:  # numpy and faiss: loaded where the linking runs, not in the workflow code
    import numpy as np

    from core.corpus.speakers import Link, LocalSpeaker, SpeakerIndex

T = TypeVar("T")

LOOKUP_THREADS = 16  # parallel metadata.json and embeddings.npy GETs
READS_PER_STEP = 200  # videos read between two heartbeats
LINKS_PER_STEP = 2000  # videos linked between two heartbeats
COMMIT_TRIES = 3  # another run committed the same number first: reload, link on top
BEAT_S = 10.0  # heartbeat while a long step runs in its thread


class SpeakerIndexActivities(Activities):
    @activity.defn
    async def link_speakers(self, req: SpeakerIndexRequest) -> SpeakerIndexResult:
        return await _link_speakers(self.rt, req)


@dataclass
class _State:
    """The last committed run: its number, index and members, and every video linked."""

    index: SpeakerIndex
    run: int = 0
    videos: frozenset[str] = frozenset()
    global_speakers: int = 0
    embedding_model: str | None = None
    clean_speech_s: dict[str, float] = field(default_factory=dict)  # per global speaker, every run


async def _link_speakers(rt: Runtime, req: SpeakerIndexRequest) -> SpeakerIndexResult:
    store = await asyncio.to_thread(lambda: rt.store)  # the first use builds a boto3 client
    candidates = sorted(await _named_videos(rt, store, req))
    for _ in range(COMMIT_TRIES):
        with scratch_dir(rt, "speaker-index") as scratch:
            state = await _beating({"loading_run": True}, _last_run, store, scratch)
        new = [v for v in candidates if v not in state.videos]
        videos, batches, model, skipped = await _read_videos(store, new, state.embedding_model)
        skipped += len(candidates) - len(new)
        if not videos or model is None:
            return SpeakerIndexResult(run=None, candidates=len(candidates), skipped=skipped)
        links: list[Link] = []
        for first in range(0, len(videos), LINKS_PER_STEP):
            step = videos[first : first + LINKS_PER_STEP]
            links += await _beating({"linking": first, "of": len(videos)}, state.index.link, step)
            activity.heartbeat({"linked": first + len(step), "of": len(videos)})
        with scratch_dir(rt, "speaker-index") as scratch:
            summary = await _beating(
                {"committing_run": state.run + 1},
                _commit_next_run,
                store,
                scratch,
                state,
                model,
                videos,
                links,
                batches,
            )
        if summary is not None:
            return SpeakerIndexResult(
                run=summary.run, candidates=len(candidates), skipped=skipped, summary=summary
            )
        activity.heartbeat({"lost_run": state.run + 1})
    raise RuntimeError(f"another linking run committed first {COMMIT_TRIES} times: retried by the policy")


async def _beating(details: dict[str, Any], call: Callable[..., T], *args: Any) -> T:
    """``call`` in a thread, heartbeating every BEAT_S while it runs: loading or storing
    a gigabyte of index, or linking a step, can outlast the heartbeat timeout."""
    task = asyncio.ensure_future(asyncio.to_thread(call, *args))
    while not (await asyncio.wait({task}, timeout=BEAT_S))[0]:
        activity.heartbeat(details)
    return task.result()


async def _named_videos(rt: Runtime, store: ObjectStore, req: SpeakerIndexRequest) -> set[str]:
    if req.batch_id is not None:
        query = (
            f'WorkflowType = "{VIDEO_WORKFLOW}" AND ExecutionStatus = "Completed" '
            f'AND {sa.BATCH_ID.name} = "{req.batch_id}"'
        )
        client = await connect(rt.settings)
        return {video_id_of(wf.id) async for wf in client.list_workflows(query)}

    def read() -> set[str]:
        if req.day is not None:
            key = manifest_key(store.prefix, req.day)
            keys = [key] if store.exists(key) else []  # no manifest for that day: no video
        else:
            keys = store.list_keys(manifests_folder(store.prefix))
        found: set[str] = set()
        for key in keys:
            lines = store.get_bytes(key).decode().splitlines()
            found |= {json.loads(line)["video_id"] for line in lines if line.strip()}
        return found

    return await _beating({"reading_manifests": True}, read)


def _last_run(store: ObjectStore, scratch: Path) -> _State:
    from core.corpus.speakers import SpeakerIndex

    markers = run_markers(store)
    if not markers:
        return _State(SpeakerIndex())
    marker = SpeakerRun.model_validate(store.get_json(markers[-1]))
    members = store.get_json(speaker_run_key(store.prefix, marker.run, SPEAKER_MEMBERS_JSON, marker.attempt))
    path = store.download_file(
        speaker_run_key(store.prefix, marker.run, SPEAKER_INDEX_FAISS, marker.attempt),
        scratch / SPEAKER_INDEX_FAISS,
    )
    index = SpeakerIndex.read(
        path,
        members["member_ids"],
        link_cosine=marker.link_cosine,
        min_speech_s=marker.min_speech_s,
    )
    totals = store.get_json_or_none(
        speaker_run_key(store.prefix, marker.run, SPEAKER_TOTALS_JSON, marker.attempt)
    )
    if totals is None:  # a run committed before totals were kept: the table adds them up
        totals = {}
        for row in speaker_table(store):
            totals[row.speaker_id] = totals.get(row.speaker_id, 0.0) + row.clean_speech_s
    return _State(
        index,
        marker.run,
        frozenset(members["videos"]),
        marker.global_speakers,
        marker.embedding_model,
        totals,
    )


async def _read_videos(
    store: ObjectStore, video_ids: list[str], model: str | None
) -> tuple[list[list[LocalSpeaker]], dict[str, str | None], str | None, int]:
    """The committed videos among ``video_ids`` whose vectors are ``model``'s (the first
    committed one's when the index is new), as local speakers; and how many were not."""
    import numpy as np

    from core.corpus.speakers import local_speakers

    with ThreadPoolExecutor(LOOKUP_THREADS) as pool:

        def read(video_id: str) -> tuple[Metadata, np.ndarray] | None:
            meta = read_metadata(store, video_id)
            if meta is None or meta.embedding is None or not meta.segments:
                return None
            key = store.keys(video_id).committed_file(meta, EMBEDDINGS_NPY)
            return meta, np.load(io.BytesIO(store.get_bytes(key)))

        videos: list[list[LocalSpeaker]] = []
        batches: dict[str, str | None] = {}
        skipped = 0
        for first in range(0, len(video_ids), READS_PER_STEP):
            step = video_ids[first : first + READS_PER_STEP]
            for video_id, found in zip(step, await asyncio.to_thread(lambda s=step: list(pool.map(read, s)))):
                if found is None:
                    skipped += 1
                    continue
                meta, embeddings = found
                assert meta.embedding is not None
                model = model or meta.embedding.model
                if meta.embedding.model != model or embeddings.shape != (
                    len(meta.segments),
                    meta.embedding.dim,
                ):
                    skipped += 1
                    continue
                videos.append(local_speakers(video_id, meta.segments, embeddings))
                batches[video_id] = meta.batch_id
            activity.heartbeat({"read": first + len(step), "of": len(video_ids)})
    return videos, batches, model, skipped


def _commit_next_run(
    store: ObjectStore,
    scratch: Path,
    state: _State,
    model: str,
    videos: list[list[LocalSpeaker]],
    links: list[Link],
    batches: dict[str, str | None],
) -> SpeakerRun | None:
    """Commit run ``state.run + 1``: ``links``, made on top of ``state``; None if another
    attempt committed that number first."""
    run, attempt = state.run + 1, uuid.uuid4().hex[:12]
    rows = [
        SpeakerRow(
            video_id=link.video_id,
            batch_id=batches[link.video_id],
            speaker=link.label,
            speaker_id=link.speaker_id,
            cosine=None if link.cosine is None else round(link.cosine, 4),
            linked=link.linked,
            clean_speech_s=round(speaker.speech_s, 3),
            run=run,
        )
        for link, speaker in zip(links, (s for video in videos for s in video), strict=True)
    ]
    summary = SpeakerRun(
        run=run,
        attempt=attempt,
        embedding_model=model,
        link_cosine=state.index.link_cosine,
        min_speech_s=state.index.min_speech_s,
        videos=len(videos),
        speakers=len(rows),
        linked=sum(r.linked for r in rows),
        joined=sum(r.cosine is not None for r in rows),
        members=state.index.members,
        global_speakers=state.global_speakers + sum(r.cosine is None for r in rows),
    )
    members = {"member_ids": state.index.member_ids, "videos": sorted(state.videos | set(batches))}
    key = lambda name: speaker_run_key(store.prefix, run, name, attempt)  # noqa: E731
    state.index.write(scratch / SPEAKER_INDEX_FAISS)  # a gigabyte at a million members: from disk
    store.put_file(key(SPEAKER_INDEX_FAISS), scratch / SPEAKER_INDEX_FAISS)
    store.put_json(key(SPEAKER_MEMBERS_JSON), members)
    body = "".join(row.model_dump_json() + "\n" for row in rows).encode()
    store.put_bytes(key(SPEAKER_LINKS_JSONL), body, "application/x-ndjson")
    totals = dict(state.clean_speech_s)
    for row in rows:
        totals[row.speaker_id] = round(totals.get(row.speaker_id, 0.0) + row.clean_speech_s, 3)
    store.put_json(key(SPEAKER_TOTALS_JSON), totals)
    by_video: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_video.setdefault(row.video_id, []).append(row.model_dump())
    with ThreadPoolExecutor(LOOKUP_THREADS) as pool:  # thousands of small PUTs a day
        list(
            pool.map(
                lambda item: store.put_json(video_speakers_key(store.prefix, item[0], run, attempt), item[1]),
                by_video.items(),
            )
        )
    return summary if store.create_json(speaker_run_key(store.prefix, run), summary.model_dump()) else None


def speaker_table(store: ObjectStore) -> list[SpeakerRow]:
    """The corpus table: every committed run's rows, in run order (a video is in one run)."""
    rows: list[SpeakerRow] = []
    for key in run_markers(store):
        marker = SpeakerRun.model_validate(store.get_json(key))
        body = store.get_bytes(speaker_run_key(store.prefix, marker.run, SPEAKER_LINKS_JSONL, marker.attempt))
        rows += [SpeakerRow.model_validate_json(line) for line in body.decode().splitlines() if line]
    return rows
