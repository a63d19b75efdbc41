"""What the daily ManifestWorkflow returns: the day's manifest, what the sweep of
``_work/`` that follows it removed (activities/manifest.py, activities/sweep.py), and
the linking of the day's speakers (activities/speaker_index.py).
"""

from __future__ import annotations

from core.contracts.corpus import SpeakerIndexResult
from core.contracts.video import _Model


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
    speakers: SpeakerIndexResult | None = None  # the day's videos linked to the corpus's speakers
