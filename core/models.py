"""Typed contracts that cross a boundary: starter -> workflow -> activities -> storage.

Payloads between activities carry object keys and small summaries, never audio or
vectors, so a workflow history stays a few KB per video whatever the audio length.
Every model is versioned through ``SCHEMA_VERSION``; metadata.json records it and a
video counts as done only when its metadata.json carries the current version.
"""

from __future__ import annotations

import re
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

VIDEO_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def validate_video_id(value: str) -> str:
    """A video id becomes a storage prefix and a workflow id: nothing that could escape it."""
    if not VIDEO_ID_PATTERN.fullmatch(value):
        raise ValueError(
            "video_id must be 1-64 characters of A-Z a-z 0-9 _ - "
            f"(got {value!r})"
        )
    return value


class VideoSpec(_Model):
    """One row of the operator's CSV, as the workflow receives it."""

    video_id: str
    url: str
    duration_hint_s: float | None = Field(default=None, ge=0)
    batch_id: str = "default"
    gpu_class: str = "auto"

    _check_id = field_validator("video_id")(validate_video_id)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+\S*$", value):
            raise ValueError(f"url must be http:// or https:// (got {value!r})")
        return value

    @field_validator("batch_id")
    @classmethod
    def _check_batch(cls, value: str) -> str:
        return validate_video_id(value)


class AudioRef(_Model):
    """Where the downloaded audio lives, and what it is."""

    video_id: str
    original_key: str  # 48 kHz PCM WAV, kept as an output
    analysis_key: str  # 16 kHz mono WAV, an intermediate under _work/
    duration_s: float
    sha256: str  # of original.wav
    source_title: str | None = None
    worker_id: str = ""
    seconds: float = 0.0  # wall time of the stage
    attempt: int = 1


class Segment(_Model):
    """One speaker turn. Turns of two speakers may overlap in time."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


class MusicRegion(_Model):
    start: float
    end: float
    probability: float = Field(ge=0.0, le=1.0)


class StageSummary(_Model):
    """Fields every stage result shares: where its bulk went, who ran it, how long,
    and (model stages) the batch sizes tried, OOMs met and chunks this attempt computed."""

    key: str
    backend: str
    worker_id: str = ""
    seconds: float = 0.0
    attempt: int = 1
    batch_sizes: list[int] = Field(default_factory=list)
    oom_count: int = 0
    chunks_computed: int = 0


class DiarizationResult(StageSummary):
    num_speakers: int
    num_segments: int
    speech_s: float


class EmbeddingResult(StageSummary):
    centroids_key: str
    dim: int
    num_segments: int


class MusicResult(StageSummary):
    num_regions: int
    music_s: float


class EmbedRequest(_Model):
    audio: AudioRef
    diarization: DiarizationResult


class VideoState(str, Enum):
    COMPLETED = "completed"
    ALREADY_COMPLETED = "already_completed"
    FAILED = "failed"


class VideoOutcome(_Model):
    """What a VideoWorkflow returns, and what the operator sees per video."""

    video_id: str
    batch_id: str
    state: VideoState
    output_prefix: str = ""
    metadata_key: str = ""
    duration_s: float = 0.0
    num_speakers: int = 0
    usable_pct: float = 0.0
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    attempts: dict[str, int] = Field(default_factory=dict)
    worker_ids: dict[str, str] = Field(default_factory=dict)
    gpu_class: str = ""
    escalations: list[str] = Field(default_factory=list)
    error_type: str | None = None
    error_message: str | None = None


class VideoStatus(_Model):
    """Answer of the VideoWorkflow ``status`` query."""

    video_id: str
    batch_id: str
    stage: str
    stages_done: list[str]
    progress: float
    gpu_class: str
    attempts: dict[str, int]
    worker_ids: dict[str, str]
    escalations: list[str] = Field(default_factory=list)
    error_type: str | None = None
    error_message: str | None = None


class FinalizeRequest(_Model):
    """Everything the upload stage needs to write the committed outputs."""

    spec: VideoSpec
    audio: AudioRef
    diarization: DiarizationResult
    embeddings: EmbeddingResult
    music: MusicResult
    gpu_class: str
    stage_seconds: dict[str, float]
    attempts: dict[str, int]
    worker_ids: dict[str, str]
    escalations: list[str] = Field(default_factory=list)


class VideoJob(_Model):
    """The VideoWorkflow's input: the CSV row plus what the starter resolved for it.

    Workflows cannot read settings (that would be I/O), so the starter passes the
    queue prefix, the GPU class and the heartbeat timeout here.
    """

    spec: VideoSpec
    queue_prefix: str
    gpu_class: str
    heartbeat_timeout_s: float = 60.0
