"""The committed outputs of one video: metadata.json (core/contracts/metadata.py), diarization.rttm,
stats.json.

Pure functions of the stage results, so the commit activity stays a thin I/O wrapper
and every rule here (what "usable" means, what usable_pct counts) is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.analysis.intervals import Disjoint, Interval, merge_intervals, overlaps, subtract
from core.contracts.metadata import (
    Backends,
    Embedding,
    LanguageHeard,
    Metadata,
    Music,
    Policy,
    Quality,
    SegmentRow,
    Source,
    Speaker,
)
from core.contracts.urls import redact_url
from core.contracts.video import (
    SCHEMA_VERSION,
    AudioRef,
    CommitRequest,
    DuplicateCommitRequest,
    MusicRegion,
    Segment,
    SharedAudio,
    StageSummary,
    UsablePolicy,
    VideoSpec,
)


@dataclass(frozen=True)
class UsableRules:
    """What "usable" means: stretches of at least ``min_s``, inside segments whose
    quality labels pass ``policy``."""

    min_s: float
    policy: UsablePolicy = UsablePolicy()


def annotate_segments(
    segments: list[Segment],
    music: list[MusicRegion],
    rules: UsableRules,
    uncertain: list[Interval] | None = None,
    labels: list[dict[str, float | None]] | None = None,
) -> list[dict[str, Any]]:
    """Each diarized segment with its overlap, music, quality labels and usable stretches.

    Usable = one speaker, no overlapped speech, no music, not where the diarization is
    unsure how many people talk (``uncertain``), at least ``min_s`` long, and labels
    (row i for segment i, when the labels stage ran) within the usable policy. A
    segment keeps its row (row i of embeddings.npy) and lists its usable
    sub-intervals, so one cough of music does not throw away a whole 20 s turn.
    """
    music_iv = Disjoint([(m.start, m.end) for m in music])
    unsure = Disjoint(list(uncertain or []))
    rows = []
    for i, (seg, talked_over) in enumerate(zip(segments, overlaps(segments))):
        music_hits = music_iv.within(seg.start, seg.end)
        unsure_hits = unsure.within(seg.start, seg.end)
        clean = subtract((seg.start, seg.end), merge_intervals(talked_over + music_hits + unsure_hits))
        usable = [(round(s, 3), round(e, 3)) for s, e in clean if e - s >= rules.min_s]
        row: dict[str, Any] = {
            "start": round(seg.start, 3),
            "end": round(seg.end, 3),
            "speaker": seg.speaker,
            "overlap": bool(talked_over),
            "music": bool(music_hits),
        }
        if labels is not None:
            row["labels"] = labels[i]
            row["unusable_by"] = rules.policy.failures(labels[i])
            if row["unusable_by"]:
                usable = []
        row["usable"] = bool(usable)
        row["usable_regions"] = [list(u) for u in usable]
        rows.append(row)
    return rows


def quality_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per video: each label's speech-weighted mean over the segments that have it,
    and how many seconds each usable-policy bound removed."""
    means: dict[str, float] = {}
    names = sorted({name for row in rows for name in row.get("labels", {})})
    for name in names:
        weighted = [
            (row["labels"][name], row["end"] - row["start"])
            for row in rows
            if row.get("labels", {}).get(name) is not None
        ]
        total = sum(w for _, w in weighted)
        if total > 0:
            means[name] = round(sum(v * w for v, w in weighted) / total, 3)
    removed: dict[str, float] = {}
    for row in rows:
        for bound in row.get("unusable_by", []):
            removed[bound] = round(removed.get(bound, 0.0) + row["end"] - row["start"], 3)
    return {"mean": means, "unusable_s_by": removed}


def usable_seconds(rows: list[dict[str, Any]]) -> float:
    return float(sum(e - s for row in rows for s, e in row["usable_regions"]))


# A turn counts as held by another video when this much of it lies in a shared stretch
# (or half of it, if shorter): the stretch's ends are placed to ~0.4 s
# (core.corpus.fingerprints), so a turn beside one is not caught by its edge.
SHARED_OVERLAP_S = 0.5


def shared_with(start: float, end: float, shared: list[SharedAudio]) -> str | None:
    """The earlier video that holds the turn [start, end), if any."""
    need = min(SHARED_OVERLAP_S, (end - start) / 2)
    for stretch in shared:
        if min(end, stretch.end_s) - max(start, stretch.start_s) >= need:
            return stretch.video_id
    return None


def source_of(spec: VideoSpec, audio: AudioRef) -> Source:
    """The URL without credentials or query tokens, and the original's sha256 (what an
    id reused for another URL is compared on): the original stays in the batch input."""
    return Source(
        url=redact_url(spec.url), url_sha256=spec.source_sha256, title=audio.source_title, sha256=audio.sha256
    )


def duplicate_metadata(req: DuplicateCommitRequest) -> Metadata:
    """The commit marker of a Duplicate: which video, from where, and whose audio it is.
    No segments, speakers or files: its original's are the same audio."""
    return Metadata(
        schema_version=SCHEMA_VERSION,
        video_id=req.spec.video_id,
        batch_id=req.spec.batch_id,
        source=source_of(req.spec, req.audio),
        duration_s=round(req.audio.duration_s, 3),
        duplicate_of=req.claim.duplicate_of,
    )


def metadata_model(
    req: CommitRequest,
    segments: list[Segment],
    music: list[MusicRegion],
    centroids: dict[str, list[float]],
    rules: UsableRules,
    uncertain: list[Interval],
    labels: list[dict[str, float | None]] | None = None,
    language: LanguageHeard | None = None,
) -> Metadata:
    """The commit marker of the video (core/contracts/metadata.py), less ``committed_by`` and
    ``files``, which the commit adds once the other files are written."""
    shared = req.claim.shared if req.claim else []
    rows = [
        {
            **row,
            **({"duplicate_of": other} if (other := shared_with(row["start"], row["end"], shared)) else {}),
        }
        for row in annotate_segments(segments, music, rules, uncertain, labels)
    ]
    duration = req.audio.duration_s
    heard = language.speakers if language else {}
    speakers = {
        name: Speaker(
            speech_s=round(sum(s.duration for s in segments if s.speaker == name), 3),
            centroid=vector,
            **({"language": heard[name]} if name in heard else {}),
        )
        for name, vector in centroids.items()
    }
    metadata = Metadata(
        schema_version=SCHEMA_VERSION,
        video_id=req.spec.video_id,
        batch_id=req.spec.batch_id,
        source=source_of(req.spec, req.audio),
        duration_s=round(duration, 3),
        num_speakers=len(speakers),
        speakers=speakers,
        segments=[SegmentRow.model_validate(row) for row in rows],
        music=[Music.model_validate(m.model_dump()) for m in music],
        uncertain=[(round(s, 3), round(e, 3)) for s, e in merge_intervals(uncertain)],
        usable_s=round(usable_seconds(rows), 3),
        usable_pct=round(100.0 * usable_seconds(rows) / duration, 2) if duration > 0 else 0.0,
        min_usable_s=rules.min_s,
        backends=Backends(
            diarization=req.diarization.backend,
            embedding=req.embeddings.backend,
            music=req.music.backend,
            **({"labels": req.labels.backend} if req.labels else {}),
            **({"language": req.labels.language_model} if req.labels and req.labels.language_model else {}),
        ),
        # what the vectors in embeddings.npy and speakers[*].centroid are: vectors of
        # different models or dimensions must never be compared or mixed downstream
        embedding=Embedding(model=req.embeddings.backend, dim=req.embeddings.dim),
    )
    if shared:
        metadata = metadata.model_copy(update={"shared_audio": shared})
    if req.labels is None:
        return metadata
    # present when the labels stage ran: segment rows then carry "labels" and
    # "unusable_by"; commits made before it have neither
    quality = Quality(
        labels_version=req.labels.labels_version,
        dnsmos_model=req.labels.dnsmos_model,
        usable_policy=Policy.model_validate(rules.policy.model_dump()),
        **quality_summary(rows),
    )
    update: dict[str, Any] = {"quality": quality}
    if language and language.video:
        update["language"] = language.video
    return metadata.model_copy(update=update)


def build_stats(req: CommitRequest) -> dict[str, Any]:
    minutes = req.audio.duration_s / 60.0
    stage_seconds = dict(req.stage_seconds)
    summaries: dict[str, AudioRef | StageSummary] = {
        "download": req.audio,
        "diarize": req.diarization,
        "embed": req.embeddings,
        "music": req.music,
        **({"labels": req.labels} if req.labels else {}),
    }
    compute = {name: summary.seconds for name, summary in summaries.items()}
    if req.claim:
        compute["claim"] = req.claim.seconds
    return {
        "schema_version": SCHEMA_VERSION,
        "video_id": req.spec.video_id,
        "audio_s": round(req.audio.duration_s, 3),
        "gpu_class": req.gpu_class,
        "stage_wall_s": {k: round(v, 3) for k, v in stage_seconds.items()},
        "stage_compute_s": {k: round(v, 3) for k, v in compute.items()},
        # the worker's resident memory at its highest while the stage ran (stages beside it included)
        "stage_peak_rss_mib": {name: summary.peak_rss_mib for name, summary in summaries.items()},
        "compute_s_per_audio_min": {
            k: round(v / minutes, 3) if minutes > 0 else None for k, v in compute.items()
        },
        "real_time_factor": round(sum(compute.values()) / req.audio.duration_s, 4)
        if req.audio.duration_s > 0
        else None,
        "attempts": req.attempts,
        "worker_ids": req.worker_ids,
        "batch_sizes": {
            "diarize": req.diarization.batch_sizes,
            "embed": req.embeddings.batch_sizes,
        },
        "oom_halvings": req.diarization.oom_count + req.embeddings.oom_count + req.music.oom_count,
        "escalations": req.escalations,
        "chunks_computed_last_attempt": {
            "diarize": req.diarization.chunks_computed,
            "embed": req.embeddings.chunks_computed,
            "music": req.music.chunks_computed,
        },
    }
