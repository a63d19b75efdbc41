"""Typed contracts that cross a boundary: starter -> workflow -> activities -> storage.

Payloads between activities carry object keys and small summaries, never audio or
vectors, so a workflow history stays a few KB per video whatever the audio length.
Every model is versioned through ``SCHEMA_VERSION``; metadata.json records it and a
video counts as done only when its metadata.json carries the current version.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

# 2: speaker embeddings from CAM++ (192-d; schema 1 held 256-d Resemblyzer vectors),
# metadata.json names the embedding model and dimension; outputs in {video_id}/v2/.
SCHEMA_VERSION = 2

VIDEO_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ID_LENGTH = 64  # video and batch ids (VIDEO_ID_PATTERN)

# The longest URL a row may have: a signed URL with its token (a few KB) fits. The cap
# bounds what a page of rows, and the batch state carried across continue-as-new, can
# weigh (see ``batch_payload_bound``); a longer URL is an invalid row, reported with its
# line by the starter.
MAX_URL_LENGTH = 8192


# a stage that has not heartbeaten for this long is given up and retried elsewhere
# (settings.heartbeat_timeout_s; the starter puts it in each job)
DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The bucket's top-level folders that are not videos (core.storage lays them out). A
# video id equal to one would put a video's files among them: such ids are refused.
WORK_FOLDER = "_work"  # intermediates and checkpoints
BATCHES_FOLDER = "_batches"  # each batch's validated input
PROBE_FOLDER = "_probe"  # the start-up check of conditional writes
MANIFESTS_FOLDER = "manifests"
EXPORTS_FOLDER = "exports"
RESERVED_IDS = frozenset({WORK_FOLDER, BATCHES_FOLDER, PROBE_FOLDER, MANIFESTS_FOLDER, EXPORTS_FOLDER})


def validate_video_id(value: str) -> str:
    """A video id becomes a storage prefix and a workflow id: nothing that could escape it."""
    if not VIDEO_ID_PATTERN.fullmatch(value):
        raise ValueError(f"video_id must be 1-64 characters of A-Z a-z 0-9 _ - (got {value!r})")
    if value in RESERVED_IDS:
        raise ValueError(
            f"{value!r} names a storage folder of the pipeline ({', '.join(sorted(RESERVED_IDS))})"
        )
    return value


class VideoSpec(_Model):
    """One row of the operator's CSV, as the workflow receives it."""

    # a field since removed (gpu_class: the batch's class is what counts) may still be
    # in a recorded history: ignored, so those runs replay
    model_config = ConfigDict(extra="ignore", frozen=True)

    video_id: str
    url: str
    duration_hint_s: float | None = Field(default=None, ge=0)
    batch_id: str = "default"

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

    key: str  # this attempt's result in storage (activities.fencing)
    backend: str
    attempt_id: str = ""
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


class LabelResult(StageSummary):
    """Per-segment quality labels (core/quality.py), one row per diarized segment."""

    num_segments: int
    labels_version: int
    dnsmos_model: str


class LabelRequest(_Model):
    audio: AudioRef
    diarization: DiarizationResult
    music: MusicResult


class VideoState(StrEnum):
    COMPLETED = "completed"
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
    labels: LabelResult | None = None  # runs recorded before the labels stage have none
    gpu_class: str
    stage_seconds: dict[str, float]
    attempts: dict[str, int]
    worker_ids: dict[str, str]
    escalations: list[str] = Field(default_factory=list)


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


# --- batches -------------------------------------------------------------------------
# Caps that keep every batch payload (a page read by ``read_batch_page``, the state a
# run hands to the next through continue-as-new) well under Temporal's payload limit,
# whatever the CSV: ``batch_payload_bound`` computes the worst case from them.
TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024  # bytes: the server's default blob size limit
MAX_WINDOW = 2000  # videos in flight per batch (their ids are carried state)
DEFAULT_WINDOW = 200
MAX_PAGE_SIZE = 1000  # rows per page
MAX_PAGE_BYTES = 256 * 1024  # JSON bytes of one page's rows: read_batch_page ends a page there
MAX_RECENT = 2000  # completions kept for the recent rate (the last 10 minutes, at most this many)
# scalars, the batch's own fields and the two small maps keyed by closed sets (error
# types, GPU classes): generously more than they can weigh
BATCH_STATE_ALLOWANCE = 64 * 1024


class BatchJob(_Model):
    """BatchWorkflow input. The rows themselves stay in storage (``input_key``, a
    validated CSV) and are read a page at a time, so any batch size fits in history."""

    batch_id: str
    input_key: str
    total: int  # valid rows in the input
    window: int = Field(default=DEFAULT_WINDOW, ge=1, le=MAX_WINDOW)  # videos in flight at most
    page_size: int = Field(default=500, ge=1, le=MAX_PAGE_SIZE)  # rows; a page also ends at MAX_PAGE_BYTES
    gpu_class: str
    queue_prefix: str
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    dry_run: bool = False
    max_events_per_run: int = 10_000  # continue-as-new well before Temporal's 50K-event limit
    reconcile_s: float = 300.0  # how often to look for videos that ended without reporting
    breaker: SourceBreaker = Field(default_factory=SourceBreaker)
    state: BatchState | None = None  # carried across continue-as-new


class ClassUsage(_Model):
    videos: int = 0
    audio_s: float = 0.0
    gpu_s: float = 0.0  # compute seconds of the model stages


class BatchState(BaseModel):
    """Everything a BatchWorkflow run hands to the next (continue-as-new). Mutable: the
    workflow updates it in place as videos start and report."""

    # fields since removed (rows_read) may still be in a recorded history: ignored
    model_config = ConfigDict(extra="ignore")

    next_offset: int = 0  # byte offset of the next unread row in the input CSV
    eof: bool = False
    pending: list[VideoSpec] = Field(default_factory=list)  # read, not started yet
    conflicts: list[str] = Field(default_factory=list)  # pending ids committed for another URL
    in_flight: list[str] = Field(default_factory=list)  # video ids started, not reported
    started: int = 0
    skipped: int = 0  # already running in another batch, or completed in Temporal's history
    completed: int = 0
    already_completed: int = 0  # outputs found committed in storage when the page was read
    failed: int = 0
    failed_by_error: dict[str, int] = Field(default_factory=dict)
    audio_s: float = 0.0
    per_class: dict[str, ClassUsage] = Field(default_factory=dict)
    # (finished at, audio s): the last 10 min, at most MAX_RECENT entries
    recent: list[tuple[float, float]] = Field(default_factory=list)
    started_at: float = 0.0  # epoch seconds (workflow time)
    paused: bool = False
    runs: int = 1  # workflow runs so far (continue-as-new count + 1)
    # the source breaker: (time, source-side?) of recent download outcomes, at most
    # MAX_RECENT; while workflow time is before breaker_until no video starts
    source_outcomes: list[tuple[float, bool]] = Field(default_factory=list)
    breaker_until: float = 0.0
    breaker_reason: str = ""
    breaker_trips: int = 0


class BatchPageRequest(_Model):
    """One page of a batch's stored input (``core/batch_input.py``), from a byte offset."""

    input_key: str
    offset: int
    max_rows: int
    batch_id: str
    skip_committed: bool  # look each row up in storage: committed ones are counted, not started


class BatchPage(_Model):
    specs: list[VideoSpec]  # to start
    committed: list[str] = Field(default_factory=list)  # already done in storage: counted, never started
    # ids among ``specs`` committed for another URL: started even if their last run
    # completed, so the new run fails VideoIdConflict where the operator looks
    conflicts: list[str] = Field(default_factory=list)
    next_offset: int
    eof: bool


_FLOAT_JSON = 24  # the longest JSON a float takes ("-2.2250738585072014e-308")


def max_spec_json_bytes() -> int:
    """The most JSON bytes one VideoSpec can take: a spec at every cap, plus 5 more bytes
    for each character of a URL that JSON escapes (a control character becomes
    \\u00XX, 6 bytes; any other character takes at most 4 bytes of UTF-8)."""
    at_caps = VideoSpec(
        video_id="x" * MAX_ID_LENGTH,
        url="http://" + "x" * (MAX_URL_LENGTH - 7),
        duration_hint_s=float.fromhex("0x1.fffffffffffffp+1023"),
        batch_id="x" * MAX_ID_LENGTH,
    )
    return len(at_caps.model_dump_json()) + 5 * MAX_URL_LENGTH + 2 * _FLOAT_JSON


def batch_payload_bound(window: int = MAX_WINDOW) -> int:
    """The most JSON bytes a batch payload can take: a BatchPage or the BatchJob (with its
    state) a run hands to the next. A page holds at most MAX_PAGE_BYTES of rows
    (read_batch_page stops before passing it; one row always fits), its committed ids
    weigh less than their rows, and ``pending`` is never more than one page; the
    conflicting ids (page and state) are a page's ids at most; the state adds the
    in-flight ids, the recent completions and the allowance."""
    spec = max_spec_json_bytes()
    assert spec <= MAX_PAGE_BYTES, "one row must always fit in a page"
    conflicts = MAX_PAGE_SIZE * (MAX_ID_LENGTH + 3)
    page = MAX_PAGE_BYTES + conflicts + 2 * _FLOAT_JSON + 64  # + next_offset, eof and the keys
    in_flight = window * (MAX_ID_LENGTH + 3)  # "id",
    recent = MAX_RECENT * (2 * _FLOAT_JSON + 3)  # [t,a],
    return page + in_flight + recent + BATCH_STATE_ALLOWANCE  # the state's bound; a page alone is less


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


class BatchProgress(_Model):
    """Answer of the BatchWorkflow ``progress`` query."""

    batch_id: str
    total: int
    done: int  # completed + already completed + skipped + failed
    completed: int
    already_completed: int
    skipped: int
    failed: int
    failed_by_error: dict[str, int]
    running: int
    waiting: int
    paused: bool
    paused_reason: str = ""  # set while the source breaker holds the batch
    resumes_at: float | None = None  # epoch seconds, when the breaker lets go
    breaker_trips: int = 0
    videos_per_h_recent: float
    videos_per_h_overall: float
    audio_h_per_h_recent: float
    audio_h_per_h_overall: float
    eta_s: float | None
    per_class: dict[str, ClassUsage]
    elapsed_s: float
    runs: int

    @property
    def not_started(self) -> int:
        """Rows this batch did not start: already done in storage, or a video whose
        workflow was running (another batch) or completed."""
        return self.already_completed + self.skipped


BatchJob.model_rebuild()


class SweepResult(_Model):
    """What ``sweep_work`` removed from ``_work/``: videos (and objects) by reason."""

    videos_with_work: int = 0
    expired: int = 0  # never committed, nothing written for the retention period
    committed_leftovers: int = 0
    objects: int = 0


class ManifestResult(_Model):
    date: str  # YYYY-MM-DD (UTC)
    key: str
    videos: int
    swept: SweepResult | None = None
