"""export_videos and write_export_index: committed videos -> training shards.

A shard is one video's clips (or long windows), cut from its committed
``original.wav`` and ``metadata.json``, which are only read. Each file of a shard is
created only if absent and its record is created last, so overlapping attempts write
nothing twice, a killed exporter resumes at the first video without a record, and a
video whose record exists is never touched again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.attempts import stage
from activities.runtime import Activities, Runtime
from activities.scratch import scratch_dir
from core.contracts.errors import WorkerShutdown
from core.contracts.export import ExportPageRequest, ExportPageResult, ExportSpec, ExportTotals, ShardRecord
from core.contracts.metadata import Metadata
from core.service import faults
from core.store.layout import ORIGINAL_WAV, ExportKeys
from core.store.objects import ObjectStore
from core.store.speaker_lookup import SpeakerLookup
from core.training import clips, shards, speaker_cap


class ExportActivities(Activities):
    @activity.defn
    def export_videos(self, request: ExportPageRequest) -> ExportPageResult:
        return _export_videos(self.rt, request)

    @activity.defn
    def write_export_index(self, spec: ExportSpec) -> ExportTotals:
        """The export's spec (once) and its index: every shard whose record exists, so a
        trainer lists the shards from one file. Rewritten by each run: a listing, not data."""
        return _write_export_index(self.rt, spec)


def _export_videos(rt: Runtime, request: ExportPageRequest) -> ExportPageResult:
    spec = request.job.spec
    keys = ExportKeys(rt.store.prefix, spec)
    written: list[ShardRecord] = []
    absent: list[str] = []
    failed: dict[str, str] = {}
    duplicates: list[str] = []
    with stage(rt) as ctx:
        linked = CorpusSpeakers(rt.store, spec)
        for done, video_id in enumerate(request.video_ids):
            ctx.heart.show({"video": video_id, "done": done, "of": len(request.video_ids)})
            if activity.is_worker_shutdown():  # the finished shards are recorded: the retry skips them
                raise WorkerShutdown(f"export: worker shutting down before {video_id}")
            record = rt.store.get_json_or_none(keys.record(video_id))
            if record is not None:
                written.append(ShardRecord.model_validate(record))
                continue
            raw = rt.store.get_json_or_none(rt.store.keys(video_id).metadata)
            if raw is None:
                absent.append(video_id)
                continue
            try:  # a marker that does not validate fails its video, as a bad original does
                metadata = Metadata.model_validate(raw)
                if metadata.duplicate_of:
                    duplicates.append(video_id)
                    continue
                with scratch_dir(rt, video_id) as tmp:
                    shard = _write_shard(rt.store, keys, spec, metadata, linked, tmp)
            except Exception as exc:  # one bad video costs its shard, not the page
                if getattr(exc, "retryable", False) or isinstance(exc, ApplicationError):
                    raise  # storage gone for longer than the ride-out, a shutdown: retry the page
                ctx.log.warning(
                    "export.shard_failed",
                    video_id=video_id,
                    error_type=type(exc).__name__,
                    error=str(exc)[:300],
                )
                failed[video_id] = f"{type(exc).__name__}: {str(exc)[:200]}"
                continue
            written.append(shard)
            ctx.audio_s += shard.audio_s
            faults.stall("export")
            ctx.log.info("export.shard", video_id=video_id, items=shard.items, bytes=shard.bytes)
    return ExportPageResult(shards=written, not_committed=absent, failed=failed, duplicates=duplicates)


class CorpusSpeakers:
    """What one export page reads of the speakers across videos: each video's global
    speakers, and every global speaker's clean speech when the spec caps its hours."""

    def __init__(self, store: ObjectStore, spec: ExportSpec) -> None:
        self.lookup = SpeakerLookup(store)
        self.clean_speech_s = self.lookup.clean_speech_s() if spec.max_hours_per_speaker else {}


def _write_shard(
    store: ObjectStore,
    keys: ExportKeys,
    spec: ExportSpec,
    metadata: Metadata,
    linked: CorpusSpeakers,
    tmp: Path,
) -> ShardRecord:
    video_id = metadata.video_id
    keys_of_video = store.keys(video_id, metadata.schema_version)
    original = store.download_file(keys_of_video.committed_file(metadata, ORIGINAL_WAV), tmp / ORIGINAL_WAV)
    speakers = linked.lookup.ids_of(video_id)
    items, dropped, capped = shard_items(metadata, original, spec, speakers, linked.clean_speech_s)
    info = shards.write_shard(spec.format, items, original, tmp / "shard", video_id, spec.sample_rate)
    files = []
    for path in info.files:
        key = f"{keys.shard_dir(video_id)}{path.name}"
        store.create_file(key, path)  # False: an overlapping attempt made it from the same inputs
        files.append(key.removeprefix(keys.root))
    record = ShardRecord(
        video_id=video_id,
        files=files,
        items=info.items,
        audio_s=round(info.audio_s, 3),
        bytes=info.bytes,
        clips_dropped=dropped,
        clips_capped=capped,
    )
    if not store.create_json(keys.record(video_id), record.model_dump()):
        record = ShardRecord.model_validate(store.get_json(keys.record(video_id)))
    return record


def shard_items(
    metadata: Metadata,
    original: Path,
    spec: ExportSpec,
    speaker_ids: dict[str, str] | None = None,
    clean_speech_s: dict[str, float] | None = None,
) -> tuple[list[shards.ShardItem], int, int]:
    """The examples of one video in the spec's view, how many clips the filters refused
    and how many its speakers' hour cap left out. ``speaker_ids``: the video's local
    speakers' global ids (those linked); ``clean_speech_s``: each global speaker's."""
    batch: dict[str, Any] = {"batch_id": metadata.batch_id}
    speaker_ids = speaker_ids or {}
    if spec.view == "windows":
        windows = clips.long_windows(metadata, spec.clip_policy)
        return [_with(shards.window_item(w), {**batch, "speaker_ids": speaker_ids}) for w in windows], 0, 0
    cut = clips.cut_clips(metadata, clips.FrameLevels.from_wav(original), spec.clip_policy)
    admitted = [
        c.model_copy(update={"speaker_id": speaker_ids.get(c.speaker)}) for c in cut if spec.filters.admits(c)
    ]
    kept = admitted
    if spec.max_hours_per_speaker:
        kept = speaker_cap.within_cap(admitted, spec.max_hours_per_speaker * 3600, clean_speech_s or {})
    items = [_with(shards.clip_item(c), batch) for c in kept]
    return items, len(cut) - len(admitted), len(admitted) - len(kept)


def _with(item: shards.ShardItem, fields: dict) -> shards.ShardItem:
    return shards.ShardItem(item.item_id, item.start, item.end, {**item.fields, **fields})


def _write_export_index(rt: Runtime, spec: ExportSpec) -> ExportTotals:
    keys = ExportKeys(rt.store.prefix, spec)
    with stage(rt):
        rt.store.create_json(keys.spec, spec.model_dump())
        records = [
            ShardRecord.model_validate(rt.store.get_json(key))
            for key in rt.store.list_keys(keys.records)
            if key.endswith(".json")
        ]
        totals = ExportTotals(
            videos=len(records),
            items=sum(r.items for r in records),
            audio_s=round(sum(r.audio_s for r in records), 3),
            bytes=sum(r.bytes for r in records),
            clips_capped=sum(r.clips_capped for r in records),
        )
        rt.store.put_json(
            keys.index,
            {
                "spec": spec.model_dump(),
                "totals": totals.model_dump(),
                "shards": [r.model_dump() for r in records],
            },
        )
        return totals
