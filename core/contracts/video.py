"""Typed contracts of one video that cross a boundary: starter -> workflow -> activities -> storage.

Its stage results, what its VideoWorkflow takes, returns and tells its batch, and the
policies it carries. What an id may be is in core.contracts.ids; batch payloads and their
caps are in core.contracts.batch; the daily manifest's results in core.contracts.manifest.

Payloads between activities carry object keys and small summaries, never audio or
vectors, so a workflow history stays a few KB per video whatever the audio length.
Every model is versioned through ``SCHEMA_VERSION``; metadata.json records it and a
video counts as done only when its metadata.json carries the current version.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.contracts import urls
from core.contracts.ids import validate_video_id

# 2: speaker embeddings from CAM++ (192-d; schema 1 held 256-d Resemblyzer vectors),
# metadata.json names the embedding model and dimension; outputs in {video_id}/v2/.
SCHEMA_VERSION = 2

# The longest URL a row may have: a signed URL with its token (a few KB) fits. The cap
# bounds what a page of rows, and the batch state carried across continue-as-new, can
# weigh (``core.contracts.batch.batch_payload_bound``); a longer URL is an invalid row, reported
# with its line by the starter.
MAX_URL_LENGTH = 8192


# a stage that has not heartbeaten for this long is given up and retried elsewhere
# (settings.heartbeat_timeout_s; the starter puts it in each job)
DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RowRef(_Model):
    """Where a video's row lies in its batch's stored input (``core/store/batch_input.py``)."""

    input_key: str
    offset: int = Field(ge=0)  # byte offset of the row's line


class VideoSpec(_Model):
    """One row of the operator's CSV, as the workflow receives it.

    Temporal stores every payload in its history and the Web UI shows it, so a batch
    hands its videos the URL redacted (``as_reference``): ``row`` says where the real
    one is stored, and the download reads it there (``activities/source_rows.py``). A
    URL's token or password never enters a payload."""

    # a field since removed (gpu_class: the batch's class is what counts) may still be
    # in a recorded history: ignored, so those runs replay
    model_config = ConfigDict(extra="ignore", frozen=True)

    video_id: str
    url: str  # as given; redacted when ``row`` is set
    duration_hint_s: float | None = Field(default=None, ge=0)
    batch_id: str = "default"
    url_sha256: str = ""  # of the real URL, when ``url`` is its redacted form
    row: RowRef | None = None

    def as_reference(self, row: RowRef) -> VideoSpec:
        """This spec as a payload may carry it: the URL redacted, its row named."""
        shown = urls.redact_url(self.url)[:MAX_URL_LENGTH]
        return self.model_copy(update={"url": shown, "url_sha256": self.source_sha256, "row": row})

    @property
    def source_sha256(self) -> str:
        """Names the real URL: what a committed video is compared on."""
        return self.url_sha256 or urls.url_sha256(self.url)

    _check_id = field_validator("video_id")(validate_video_id)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if len(value) > MAX_URL_LENGTH:
            raise ValueError(f"url is {len(value)} characters long; at most {MAX_URL_LENGTH} are accepted")
        if not re.match(r"^https?://[^\s/]+\S*$", value):
            raise ValueError(f"url must be http:// or https:// (got {value!r})")
        return value

    @field_validator("batch_id")
    @classmethod
    def _check_batch(cls, value: str) -> str:
        return validate_video_id(value)


class AudioRef(_Model):
    """Where the downloaded audio lives (the download attempt's own keys), and what it is."""

    video_id: str
    # what was downloaded, by hash (a URL may hold a token): a reused id is not this audio
    url_sha256: str = ""
    attempt_id: str = ""  # the download attempt that wrote both copies
    original_key: str  # 48 kHz PCM WAV; the commit copies it to {video_id}/v{N}/original.wav
    analysis_key: str  # 16 kHz mono WAV, an intermediate under _work/
    duration_s: float
    sha256: str  # of original.wav
    # its Chromaprint (core.corpus.fingerprints), what the claim matches: "" when the
    # duplicate check is off or the audio is too short to fingerprint
    fingerprint_key: str = ""
    source_title: str | None = None
    worker_id: str = ""
    seconds: float = 0.0  # wall time of the stage
    attempt: int = 1
    rss_start_mib: float = 0.0  # as StageSummary's: the download worker's memory
    peak_rss_mib: float = 0.0


class Relation(StrEnum):
    """How a new video's audio relates to an earlier video's (core.corpus.fingerprints'
    ``relation`` decides): the same recording is a Duplicate and is not processed; the
    others are processed with the shared stretch marked."""

    SAME = "same"  # neither has much the other lacks: a re-upload, a re-encode
    CONTAINED = "contained"  # the new video lies inside the earlier one (a highlight, a trim)
    CONTAINS = "contains"  # the earlier video lies inside the new one (an episode with a new intro)
    PARTIAL = "partial"  # they share stretches, and each has much of its own (a shared intro)


class SharedAudio(_Model):
    """A stretch of a video's audio that an earlier claimed video holds too: where it
    lies in each, in seconds, and how alike (share of differing fingerprint bits)."""

    video_id: str  # the earlier video
    relation: Relation
    start_s: float
    end_s: float
    other_start_s: float
    other_end_s: float
    bit_error: float


class ClaimRequest(_Model):
    """A downloaded video's claim on its audio: its fingerprint, stored by the download."""

    video_id: str
    fingerprint_key: str
    duration_s: float


class AudioClaim(_Model):
    """What the claim decided: a duplicate of an earlier video (``duplicate_of``), or the
    video's own audio, with any stretches it shares with earlier ones (``shared``)."""

    video_id: str
    seq: int  # its entry in the claim log
    duplicate_of: str | None = None
    shared: list[SharedAudio] = []
    candidates: int = 0  # earlier videos whose fingerprints were matched in full
    worker_id: str = ""
    attempt: int = 1
    seconds: float = 0.0


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

    key: str  # this attempt's result in storage (activities.fencing)
    backend: str
    attempt_id: str = ""
    worker_id: str = ""
    seconds: float = 0.0
    attempt: int = 1
    batch_sizes: list[int] = Field(default_factory=list)
    oom_count: int = 0
    chunks_computed: int = 0
    # the worker process's resident memory (MiB) when this attempt started and at its
    # highest while it ran, the stages beside it included (core.service.memory)
    rss_start_mib: float = 0.0
    peak_rss_mib: float = 0.0


class DiarizationResult(StageSummary):
    num_speakers: int
    num_segments: int
    speech_s: float
    # the stage folder whose chunks kept their CAM++ trunk frames (store.layout.frames_key),
    # when all ``frame_chunks`` did: the embed stage pools from them, with no second pass
    frames_dir: str | None = None
    frame_chunks: int = 0


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


class LabelResult(StageSummary):
    """Per-segment quality labels (core/analysis/quality.py), one row per diarized segment."""

    num_segments: int
    labels_version: int
    dnsmos_model: str
    language_model: str | None = None  # the language head's, in results that ran it


class LabelRequest(_Model):
    audio: AudioRef
    diarization: DiarizationResult
    music: MusicResult


class VideoState(StrEnum):
    COMPLETED = "completed"
    DUPLICATE = "duplicate"  # committed without the model stages: its audio is an earlier video's
    FAILED = "failed"


class StageTrail(_Model):
    """What a video's stages recorded on the way: carried by the commit request, the
    outcome and the status query alike."""

    gpu_class: str = ""
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    attempts: dict[str, int] = Field(default_factory=dict)
    worker_ids: dict[str, str] = Field(default_factory=dict)
    escalations: list[str] = Field(default_factory=list)


class VideoOutcome(StageTrail):
    """What a VideoWorkflow returns, and what the operator sees per video."""

    video_id: str
    batch_id: str
    state: VideoState
    output_prefix: str = ""
    metadata_key: str = ""
    duration_s: float = 0.0
    num_speakers: int = 0
    usable_pct: float = 0.0
    duplicate_of: str | None = None  # state DUPLICATE: the video whose audio it repeats
    error_type: str | None = None
    error_message: str | None = None


class VideoStatus(StageTrail):
    """Answer of the VideoWorkflow ``status`` query."""

    video_id: str
    batch_id: str
    stage: str
    stages_done: list[str]
    progress: float
    error_type: str | None = None
    error_message: str | None = None


class CommitRequest(StageTrail):
    """Everything the commit stage needs to write the committed outputs."""

    spec: VideoSpec
    audio: AudioRef
    diarization: DiarizationResult
    embeddings: EmbeddingResult
    music: MusicResult
    labels: LabelResult | None = None  # runs recorded before the labels stage have none
    claim: AudioClaim | None = None  # runs recorded before the duplicate check have none


class DuplicateCommitRequest(StageTrail):
    """What the commit of a Duplicate needs: the video, its audio (not kept: its
    original's is the same) and the claim that found the original."""

    spec: VideoSpec
    audio: AudioRef
    claim: AudioClaim


class UsablePolicy(_Model):
    """Which quality labels make a segment unusable (setting ``PIPELINE_USABLE_POLICY``,
    JSON). Beyond the fixed rules (one speaker, no overlap, no music region, diarization
    sure, ``min_usable_s``), each bound set here turns a segment with a label past it
    unusable; None leaves that label as a label only. The defaults cut what no speech
    corpus wants (clipped audio, music or singing over most of the turn); scores that
    saturate or rank (DNSMOS, SNR, bandwidth) stay labels, to filter on at export."""

    max_clipping: float | None = 0.01
    max_music: float | None = 0.5
    max_singing: float | None = 0.5
    min_snr_db: float | None = None
    min_bandwidth_hz: float | None = None
    min_dnsmos_ovrl: float | None = None

    def failures(self, labels: dict[str, float | None]) -> list[str]:
        """The bounds ``labels`` break (empty: usable as far as the labels go). A label
        that could not be measured (None) breaks no bound."""
        broken = []
        for name, bound in self.model_dump().items():
            if bound is None:
                continue
            kind, label = name.split("_", 1)
            value = labels.get(label)
            if value is not None and (value > bound if kind == "max" else value < bound):
                broken.append(name)
        return broken


class SourceBreaker(_Model):
    """When the source pushes back fleet-wide (bot walls, 429s), the batch stops starting
    videos for a cool-down instead of letting hundreds of good videos fail. It trips
    when, among the recent download outcomes its videos report (completions and
    source-side errors), the source-side share reaches ``threshold``. A video that
    meets a source-side error waits (``video_wait_s``, doubling, at most ``cooldown_s``)
    and tries again, up to ``video_waits`` times, without spending its retry attempts."""

    threshold: float = Field(default=0.5, gt=0, le=1)
    min_samples: int = Field(default=8, ge=1)
    window_s: float = Field(default=600.0, gt=0)
    cooldown_s: float = Field(default=1800.0, gt=0)
    video_wait_s: float = Field(default=120.0, gt=0)
    video_waits: int = Field(default=8, ge=0)


class Escalation(StrEnum):
    """Where a video goes when its class cannot take it and the class that could has no
    worker polling its queue (activities/queues.py): it fails ``NoWorkerForClass`` at
    once, or runs on the largest class between the two that is served (with that class's
    smaller batches) rather than wait for a worker that never comes."""

    FAIL = "fail"
    LARGEST_SERVED = "largest-served"


class ServedClassesRequest(_Model):
    queue_prefix: str
    classes: list[str]


class VideoJob(_Model):
    """The VideoWorkflow's input: the CSV row plus what the starter resolved for it.

    Workflows cannot read settings (that would be I/O), so the starter passes the
    queue prefix, the GPU class and the heartbeat timeout here.
    """

    spec: VideoSpec
    queue_prefix: str
    gpu_class: str
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    # a model stage waiting longer than this for a worker of its class fails typed
    # (NoWorkerForClass): a class nobody serves must not hold a video forever
    queue_timeout_s: float = 12 * 3600.0
    breaker: SourceBreaker = Field(default_factory=SourceBreaker)  # the per-video waits
    escalation: Escalation = Escalation.LARGEST_SERVED


class SourceTrouble(_Model):
    """What a VideoWorkflow tells its batch when its download meets a source-side error
    (signal ``source_trouble``): the breaker's evidence."""

    video_id: str
    error_type: str


class VideoReport(_Model):
    """What a VideoWorkflow tells its batch when it ends (signal ``video_done``)."""

    video_id: str
    state: VideoState
    error_type: str | None = None
    audio_s: float = 0.0
    gpu_class: str = ""
    gpu_s: float = 0.0
