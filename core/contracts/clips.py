"""What an export cuts from a committed video: the clip policy (a setting,
``PIPELINE_CLIP_POLICY``), single-speaker clips and long multi-speaker windows.
``core/training/clips.py`` cuts them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from core.contracts.rttm import rttm_text
from core.contracts.video import Segment


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClipPolicy(_Frozen):
    """How long an example may be (a setting: PIPELINE_CLIP_POLICY).

    ``pause_search_s``: a cut may move this far from its ideal (even-split) point to
    land in a pause; 2 s holds a sentence boundary in ordinary speech while keeping
    the pieces of a long turn close to even.
    """

    min_s: float = 3.0
    max_s: float = 30.0
    window_s: float = 120.0
    pause_search_s: float = 2.0

    @model_validator(mode="after")
    def _feasible(self) -> ClipPolicy:
        # with max_s >= 2 min_s every region longer than min_s splits into valid pieces
        if not (0.001 <= self.min_s and self.max_s >= 2 * self.min_s):
            raise ValueError(f"need 1 ms <= min_s and max_s >= 2 * min_s (got {self.min_s}, {self.max_s})")
        if self.window_s < self.max_s or self.pause_search_s < 0:
            raise ValueError("need window_s >= max_s and pause_search_s >= 0")
        return self


class Clip(_Frozen):
    clip_id: str  # f"{video_id}_{start_ms:09d}_{end_ms:09d}": no dots (webdataset keys split on them)
    video_id: str
    start: float
    end: float
    speaker: str
    labels: dict[str, float | None] = {}
    # the speaker's spoken language (else the video's, where the speaker had no clean
    # window) and its probability: core/analysis/language.py
    language: str | None = None
    language_p: float | None = None
    speaker_id: str | None = None  # the global speaker, once a linking run linked the video

    @property
    def duration(self) -> float:
        return self.end - self.start


class Turn(_Frozen):
    start: float  # relative to the window start
    end: float
    speaker: str


class Window(_Frozen):
    """A long-context example: every speaker, overlaps kept, times relative to ``start``."""

    window_id: str
    video_id: str
    start: float
    end: float
    turns: list[Turn]
    language: str | None = None  # the video's spoken language and its probability
    language_p: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    def rttm(self) -> str:
        return rttm_text(
            self.window_id, [Segment(start=t.start, end=t.end, speaker=t.speaker) for t in self.turns]
        )
