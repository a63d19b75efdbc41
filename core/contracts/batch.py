"""What a BatchWorkflow carries, and the caps that keep it under Temporal's payload limit.

A BatchWorkflow gets a ``BatchJob`` (the rows stay in storage, as a validated CSV read
a page at a time: ``BatchPageRequest`` -> ``BatchPage``), hands its ``BatchState`` to
the next run through continue-as-new, and answers ``progress`` with a ``BatchProgress``.
Each of these payloads is bounded whatever the CSV: the caps below (window, page rows
and bytes, recent completions, with ``core.contracts.video``' id and URL caps) keep it under
Temporal's payload limit, and ``batch_payload_bound`` computes the worst case from them.
The per-video types (``VideoSpec``, and the ``VideoReport``/``SourceTrouble`` signals a
VideoWorkflow sends its batch) are ``core.contracts.video``'.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.contracts.ids import MAX_ID_LENGTH
from core.contracts.video import (
    DEFAULT_HEARTBEAT_TIMEOUT_S,
    MAX_URL_LENGTH,
    Escalation,
    RowRef,
    SourceBreaker,
    VideoSpec,
    _Model,
)

# Caps that keep every batch payload (a page read by ``read_batch_page``, the state a
# run hands to the next through continue-as-new) well under Temporal's payload limit,
# whatever the CSV: ``batch_payload_bound`` computes the worst case from them.
TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024  # bytes: the server's default blob size limit
MAX_WINDOW = 2000  # videos in flight per batch (their ids are carried state)
DEFAULT_WINDOW = 200
MAX_PAGE_SIZE = 1000  # rows per page
MAX_PAGE_BYTES = 256 * 1024  # JSON bytes of one page's rows: read_batch_page ends a page there
MAX_INPUT_KEY_LENGTH = 1024  # S3's own limit on a key: where a spec's row is stored
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
    escalation: Escalation = Escalation.LARGEST_SERVED  # core.contracts.video.Escalation
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
    duplicates: int = 0  # committed as a Duplicate of an earlier video's audio: no model ran
    duplicate_audio_s: float = 0.0
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
    """One page of a batch's stored input (``core/store/batch_input.py``), from a byte offset."""

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
        url_sha256="0" * 64,
        row=RowRef(input_key="x" * MAX_INPUT_KEY_LENGTH, offset=2**63),
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


class BatchProgress(_Model):
    """Answer of the BatchWorkflow ``progress`` query."""

    batch_id: str
    total: int
    done: int  # completed + duplicates + already completed + skipped + failed
    completed: int
    duplicates: int = 0
    duplicate_audio_s: float = 0.0  # audio the model stages did not run on
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


RATE_WINDOW_S = 600.0  # "recent" throughput: the last 10 minutes


def progress_of(job: BatchJob, s: BatchState, now: float) -> BatchProgress:
    """What the ``progress`` query answers, from the batch's state at workflow time ``now``
    (epoch seconds): pure, so the workflow stays deterministic."""
    elapsed = max(now - s.started_at, 1e-6)
    recent = [(t, a) for t, a in s.recent if now - t <= RATE_WINDOW_S]
    span = min(RATE_WINDOW_S, elapsed)
    if len(recent) >= MAX_RECENT:  # more completions than kept: the rate over what is kept
        span = max(now - recent[0][0], 1.0)
    done = s.completed + s.duplicates + s.already_completed + s.skipped + s.failed
    total = job.total
    recent_rate = len(recent) / span * 3600
    overall_rate = s.completed / elapsed * 3600
    rate = recent_rate or overall_rate
    return BatchProgress(
        batch_id=job.batch_id,
        total=total,
        done=done,
        completed=s.completed,
        duplicates=s.duplicates,
        duplicate_audio_s=round(s.duplicate_audio_s, 1),
        already_completed=s.already_completed,
        skipped=s.skipped,
        failed=s.failed,
        failed_by_error=dict(s.failed_by_error),
        running=len(s.in_flight),
        waiting=max(total - done - len(s.in_flight), 0),
        paused=s.paused or now < s.breaker_until,
        paused_reason=s.breaker_reason if now < s.breaker_until else ("operator" if s.paused else ""),
        resumes_at=s.breaker_until if now < s.breaker_until else None,
        breaker_trips=s.breaker_trips,
        videos_per_h_recent=round(recent_rate, 2),
        videos_per_h_overall=round(overall_rate, 2),
        audio_h_per_h_recent=round(sum(a for _, a in recent) / span, 4),
        audio_h_per_h_overall=round(s.audio_s / elapsed, 4),
        eta_s=round((total - done) / rate * 3600, 1)
        if rate > 0 and total > done
        else (0.0 if total <= done else None),
        per_class=dict(s.per_class),
        elapsed_s=round(elapsed, 1),
        runs=s.runs,
    )
