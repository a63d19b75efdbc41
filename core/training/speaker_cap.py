"""An export's cap on the hours of any one global speaker: which clips of a prolific
speaker it keeps.

Why a share, not the first hours found: an export's pages run in parallel, one video at
a time, and are rerun to extend it, so a clip's fate must not depend on which videos were
exported first. A global speaker with T seconds of clean speech in the corpus keeps each
of its clips with probability cap / T, decided by a hash of the clip's id: every run and
every page decides alike, and the speaker's clips, a part of its clean speech, add up to
the cap at most (in expectation) across every export of the spec. A clip whose video no
linking run has linked yet has no global speaker, and no cap applies to it.
"""

from __future__ import annotations

import hashlib

from core.contracts.clips import Clip


def share(cap_s: float, clean_speech_s: float) -> float:
    """The part of a speaker's clips the cap keeps."""
    return 1.0 if clean_speech_s <= cap_s else cap_s / clean_speech_s


def draw(clip_id: str) -> float:
    """A clip's uniform number in [0, 1), the same on every machine and run."""
    return int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "big") / 2**64


def within_cap(clips: list[Clip], cap_s: float, clean_speech_s: dict[str, float]) -> list[Clip]:
    """The clips the cap keeps, in their order."""
    kept = []
    for clip in clips:
        whose = clip.speaker_id
        if whose is None or draw(clip.clip_id) < share(cap_s, clean_speech_s.get(whose, 0.0)):
            kept.append(clip)
    return kept
