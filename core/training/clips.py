"""Training examples cut from a video's committed outputs: single-speaker clips and
long multi-speaker windows.

Pure functions of metadata.json (``core.contracts.metadata.Metadata``; a parsed one is validated
into it) and of the original's frame levels, so an export can be rerun, filtered
differently or extended without touching what the pipeline committed. All cutting is
done in integer milliseconds: a region of exactly ``min_s`` must not fall out through a
float rounding, and ids built from the millisecond bounds must be the same on every run.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from core.contracts.clips import Clip, ClipPolicy, Turn, Window
from core.contracts.metadata import Metadata, SegmentRow

# A cut is placed in the middle of the longest run of frames within this much of the
# quietest one: a real pause, not one quiet frame between two syllables.
QUIET_TOLERANCE_DB = 3.0
SILENCE_FLOOR_DB = -100.0  # what digital silence reads as (log of zero is -inf)
LEVEL_BLOCK_S = 30.0  # FrameLevels reads the WAV this much at a time


class FrameLevels:
    """Frame energies (dB) of a recording: all a cut needs to find pauses, at a
    hundredth of the samples' memory, so a 6 h recording is never held in memory."""

    def __init__(self, db: np.ndarray, hop_s: float) -> None:
        self.db = np.asarray(db, dtype=np.float32)
        self.hop_s = hop_s

    @classmethod
    def from_wav(cls, path: Path, hop_s: float = 0.01) -> FrameLevels:
        import soundfile as sf

        chunks = []
        with sf.SoundFile(str(path)) as handle:
            hop = max(1, round(hop_s * handle.samplerate))
            block = hop * max(1, round(LEVEL_BLOCK_S / hop_s))  # whole frames per block
            for samples in handle.blocks(blocksize=block, dtype="float32", always_2d=True):
                chunks.append(_frame_db(samples.mean(axis=1), hop))
            hop_s = hop / handle.samplerate
        return cls(np.concatenate(chunks) if chunks else np.zeros(0, np.float32), hop_s)

    def quietest(self, start: float, end: float) -> float:
        """Time of the quietest frame in [start, end]; among frames within
        QUIET_TOLERANCE_DB of it, the middle of the longest such run."""
        first = max(0, math.ceil(start / self.hop_s - 0.5))
        last = min(len(self.db) - 1, math.floor(end / self.hop_s - 0.5))
        if last < first:
            return (start + end) / 2
        levels = self.db[first : last + 1]
        quiet = levels <= levels.min() + QUIET_TOLERANCE_DB
        run_start, run_len = _longest_run(quiet)
        centre = first + run_start + (run_len - 1) / 2
        return min(max((centre + 0.5) * self.hop_s, start), end)


def _frame_db(samples: np.ndarray, hop: int) -> np.ndarray:
    frames = -(-len(samples) // hop)
    padded = np.zeros(frames * hop, dtype=np.float64)
    padded[: len(samples)] = samples
    power = np.square(padded).reshape(frames, hop).mean(axis=1)
    levels: np.ndarray = np.maximum(10 * np.log10(np.maximum(power, 1e-30)), SILENCE_FLOOR_DB).astype(
        np.float32
    )
    return levels


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best] - starts[best])


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _labels(row: SegmentRow) -> dict[str, float | None]:
    """The segment's numeric labels (booleans as 0/1); a value of another type is not
    a label this export knows how to filter or store, so it is left out."""
    out: dict[str, float | None] = {}
    for key, value in (row.labels or {}).items():
        if value is None or isinstance(value, (int, float)):
            out[key] = None if value is None else float(value)
    return out


def _language(metadata: Metadata, speaker: str) -> dict[str, Any]:
    """Clip's ``language`` and ``language_p``."""
    found = metadata.language_of(speaker)
    return {"language": found.language, "language_p": found.probability} if found else {}


def _regions(metadata: Metadata) -> list[tuple[int, int, SegmentRow]]:
    """Every usable region with its row, in time order, never overlapping: two turns of
    one speaker may overlap in the diarization, and both would list the shared stretch.
    A turn another video's audio holds too (``duplicate_of``) is that video's to export."""
    rows = metadata.segments
    found = sorted(
        (_ms(s), _ms(e), i)
        for i, row in enumerate(rows)
        if row.duplicate_of is None
        for s, e in row.usable_regions
    )
    out, floor = [], -1
    for s, e, i in found:
        s = max(s, floor)
        if e > s:
            out.append((s, e, rows[i]))
            floor = e
    return out


def _cut_points(s: int, e: int, levels: FrameLevels | None, policy: ClipPolicy) -> list[int]:
    """Bounds of the pieces of [s, e] (ms): n = ceil(len / max) pieces, each cut searched
    only where both the piece before it and what remains after it can stay valid."""
    lo_ms, hi_ms, search = _ms(policy.min_s), _ms(policy.max_s), _ms(policy.pause_search_s)
    n = max(1, math.ceil((e - s) / hi_ms))
    points, cursor = [s], s
    for remaining in range(n - 1, 0, -1):
        lo = max(cursor + lo_ms, e - remaining * hi_ms)
        hi = min(cursor + hi_ms, e - remaining * lo_ms)
        ideal = cursor + round((e - cursor) / (remaining + 1))
        cut = ideal
        if levels is not None:
            a, b = max(lo, ideal - search), min(hi, ideal + search)
            cut = _ms(levels.quietest(a / 1000, b / 1000))
        cursor = min(max(cut, lo), hi)
        points.append(cursor)
    return points + [e]


def cut_clips(metadata: Metadata, levels: FrameLevels | None, policy: ClipPolicy) -> list[Clip]:
    """Single-speaker clips of [min_s, max_s] inside the usable regions, in time order.
    A long region is split at pauses (evenly when ``levels`` is None)."""
    video_id = metadata.video_id
    clips = []
    for s, e, row in _regions(metadata):
        if e - s < _ms(policy.min_s):
            continue
        points = _cut_points(s, e, levels, policy)
        for a, b in pairwise(points):
            clips.append(
                Clip(
                    clip_id=f"{video_id}_{a:09d}_{b:09d}",
                    video_id=video_id,
                    start=a / 1000,
                    end=b / 1000,
                    speaker=row.speaker,
                    labels=_labels(row),
                    **_language(metadata, row.speaker),
                )
            )
    return clips


def _speech_blocks(turns: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    blocks: list[list[int]] = []
    for s, e, _ in turns:
        if blocks and s <= blocks[-1][1]:
            blocks[-1][1] = max(blocks[-1][1], e)
        else:
            blocks.append([s, e])
    return [(s, e) for s, e in blocks]


def _window_end(
    start: int, blocks: list[tuple[int, int]], turns: list[tuple[int, int, str]], span: int
) -> int:
    """Where a window opened at ``start`` closes: at the last pause that keeps it within
    ``span``; failing that (one stretch of talk longer than the window) at the latest
    turn end in its second half, so as few turns as possible are cut; else at ``span``."""
    limit = start + span
    pauses = [e for s, e in blocks if start < e <= limit]
    if pauses:
        return pauses[-1]
    ends = [e for _, e, _ in turns if start + span // 2 < e <= limit]
    return max(ends) if ends else limit


def long_windows(metadata: Metadata, policy: ClipPolicy) -> list[Window]:
    """Consecutive windows of up to window_s over the recording's speech, each with all
    its turns (overlaps kept; a turn crossing a forced boundary is truncated there)."""
    video_id = metadata.video_id
    turns = sorted(
        (_ms(r.start), _ms(r.end), r.speaker)
        for r in metadata.segments
        if r.end > r.start and r.duplicate_of is None  # another video's audio: exported there
    )
    blocks = _speech_blocks(turns)
    span = _ms(policy.window_s)
    heard = metadata.language
    language: dict[str, Any] = {"language": heard.language, "language_p": heard.probability} if heard else {}
    windows = []
    cursor = blocks[0][0] if blocks else 0
    for block_start, block_end in blocks:
        cursor = max(cursor, block_start)
        while cursor < block_end:
            end = _window_end(cursor, blocks, turns, span)
            inside = [
                Turn(start=(max(s, cursor) - cursor) / 1000, end=(min(e, end) - cursor) / 1000, speaker=who)
                for s, e, who in turns
                if s < end and e > cursor
            ]
            if inside:
                windows.append(
                    Window(
                        window_id=f"{video_id}_w{cursor:09d}_{end:09d}",
                        video_id=video_id,
                        start=cursor / 1000,
                        end=end / 1000,
                        turns=inside,
                        **language,
                    )
                )
            cursor = end
    return windows
