"""What an export is and where it lives: the ExportWorkflow's input, the record of each
shard, and every key under ``exports/{batch_id}/``.

An export packs a batch's committed videos into shards a trainer streams: one shard
per video, so a shard is an idempotent unit (it exists whole under its final keys or
not at all, its record written last) and an export of a still-running batch is
extended by running it again. The spec (format, view, filters, clip policy, sample
rate) is stored with the export: a second run with another spec is refused rather
than mixing two kinds of shards under one name.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.contracts.clips import Clip, ClipPolicy
from core.contracts.video import DEFAULT_HEARTBEAT_TIMEOUT_S

PAGES_PER_RUN = 500  # an export's pages per workflow run, then continue-as-new

Format = Literal["lhotse-shar", "webdataset"]
View = Literal["clips", "windows"]  # single-speaker clips, or long multi-speaker windows with RTTM


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExportFilters(_Model):
    """The export's quality bar. A clip whose label was never measured (None or
    missing) fails a filter on that label: unknown quality is not good quality, and an
    unknown language is not the language asked for."""

    min_dnsmos: float | None = None  # on dnsmos_ovrl
    min_s: float | None = None
    max_s: float | None = None
    min_bandwidth_hz: float | None = None
    min_snr_db: float | None = None
    max_music: float | None = None
    language: str | None = None  # the clip's speaker speaks it (Whisper's code: "en", "de")
    min_language_p: float | None = None  # ... with at least this probability

    def admits(self, clip: Clip) -> bool:
        duration = round(clip.duration, 3)
        checks = [
            (self.min_s, duration, True),
            (self.max_s, duration, False),
            (self.min_dnsmos, clip.labels.get("dnsmos_ovrl"), True),
            (self.min_bandwidth_hz, clip.labels.get("bandwidth_hz"), True),
            (self.min_snr_db, clip.labels.get("snr_db"), True),
            (self.max_music, clip.labels.get("music"), False),
            (self.min_language_p, clip.language_p, True),
        ]
        if self.language is not None and clip.language != self.language:
            return False
        return all(_passes(bound, value, at_least) for bound, value, at_least in checks)


# added after exports had names (ExportSpec.name)
LATER_FILTERS = ("language", "min_language_p")
LATER_FIELDS = ("max_hours_per_speaker",)


def _passes(bound: float | None, value: float | None, at_least: bool) -> bool:
    if bound is None:
        return True
    if value is None:
        return False
    return value >= bound if at_least else value <= bound


class ExportSpec(_Model):
    """What the shards of one export hold: fixed for the export's life."""

    batch_id: str
    format: Format
    view: View = "clips"
    filters: ExportFilters = ExportFilters()
    clip_policy: ClipPolicy = ClipPolicy()
    sample_rate: int | None = None  # None: the committed original's rate
    # a global speaker's clips are kept in the share that this many hours is of its clean
    # speech in the corpus (core/training/speaker_cap.py); None: no cap
    max_hours_per_speaker: float | None = Field(default=None, gt=0)

    @property
    def name(self) -> str:
        """The export's folder under the batch: format and view, plus a digest of the
        rest when it is not the default, so two specs never share shards."""
        default = ExportSpec(batch_id=self.batch_id, format=self.format, view=self.view)
        base = f"{self.format}/{self.view}"
        if self == default:
            return base
        # fields added later are left out while unset: an export keeps the name it had
        unset: dict[str, Any] = {name: True for name in LATER_FIELDS if getattr(self, name) is None}
        filters = {name for name in LATER_FILTERS if getattr(self.filters, name) is None}
        if filters:
            unset["filters"] = filters
        dumped = self.model_dump_json(exclude=unset or None)
        digest = hashlib.sha256(dumped.encode()).hexdigest()[:10]
        return f"{base}-{digest}"


class ShardRecord(_Model):
    """Written last, create-if-absent: its presence means the shard's files are whole."""

    video_id: str
    files: list[str]  # keys, relative to the export folder
    items: int
    audio_s: float
    bytes: int
    clips_dropped: int = 0  # cut, then refused by the filters
    clips_capped: int = 0  # of those left, over their global speaker's hours (max_hours_per_speaker)


class ExportPageResult(_Model):
    shards: list[ShardRecord] = Field(default_factory=list)  # written or found whole
    not_committed: list[str] = Field(default_factory=list)  # not (yet) committed: a later run takes them
    failed: dict[str, str] = Field(default_factory=dict)  # video id -> error: its outputs could not be cut
    duplicates: list[str] = Field(default_factory=list)  # Duplicates: their originals' shards hold the audio


class ExportTotals(_Model):
    videos: int = 0
    not_committed: int = 0
    failed: int = 0
    duplicates: int = 0
    items: int = 0
    audio_s: float = 0.0
    bytes: int = 0
    clips_capped: int = 0  # left out by max_hours_per_speaker

    def plus(self, page: ExportPageResult) -> ExportTotals:
        return ExportTotals(
            videos=self.videos + len(page.shards),
            not_committed=self.not_committed + len(page.not_committed),
            failed=self.failed + len(page.failed),
            duplicates=self.duplicates + len(page.duplicates),
            items=self.items + sum(s.items for s in page.shards),
            audio_s=round(self.audio_s + sum(s.audio_s for s in page.shards), 3),
            bytes=self.bytes + sum(s.bytes for s in page.shards),
            clips_capped=self.clips_capped + sum(s.clips_capped for s in page.shards),
        )


class ExportJob(_Model):
    """ExportWorkflow input."""

    spec: ExportSpec
    input_key: str  # the batch's validated rows (core.store.layout.batch_input_key)
    queue_prefix: str
    page_size: int = 50  # videos per export activity
    parallel: int = 4  # export activities at once
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S  # the starter sets settings.heartbeat_timeout_s
    pages_per_run: int = PAGES_PER_RUN  # then continue-as-new: the history stays small for any batch
    # where a continued run starts (continue-as-new carries it)
    next_offset: int = 0
    done: ExportTotals | None = None


class ExportPageRequest(_Model):
    job: ExportJob
    video_ids: list[str]
