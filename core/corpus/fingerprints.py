"""Duplicate audio: a Chromaprint fingerprint of a whole file, and where two of them align.

The same episode comes back under another URL re-encoded (another codec, bitrate or
sample rate), trimmed, with a channel jingle in front, or as a highlight cut out of it.
A byte hash sees none of that; Chromaprint does. ffmpeg's chromaprint muxer reduces the
audio to 12 chroma bands (pitch classes, 28-3520 Hz: below what a low bitrate or an
8 kHz rate discards) and writes one 32-bit item per ``ITEM_S`` (~8 a second), each bit
pair one of 16 filters over ~2.7 s of chroma. Where two files hold the same audio, a few
percent of the bits differ (Opus 32 kbps, MP3 64 kbps, 8 kHz); where they do not, half.

Matching two fingerprints (``overlaps``) has two steps:
- offsets: every pair of items whose top ``KEY_BITS`` agree votes for the shift between
  them; the same audio piles its votes on one shift, unrelated audio spreads them thin.
  Keys repeated within a file (silence, a held tone) do not vote: they would outvote;
- stretches: at each of the best few shifts, the bit error of every aligned pair of
  items, averaged over ``SMOOTH_S``, and the runs of at least ``MIN_MATCH_S`` under
  ``MAX_BIT_ERROR``. Where a run meets a file's start or end it is placed to a fraction
  of an item; between shared and other audio to ~0.4 s (a standard deviation).
``relation`` says what the stretches mean for a new video against a committed one.

The thresholds come from benchmarks/duplicates.py (the eval and sample recordings, their
re-encodes, trims, jingles, intros and highlights, and every unrelated pair): the figures
behind each are in its comment. A change of speed is beyond what Chromaprint was made
for: a copy 2 % faster still matches, in pieces, as its items drift from the original's
grid (one item every 6 s), so its stretches' ends and its relation are less sure.

Nothing here reads storage or talks to Temporal: the activity fingerprints the download,
stores ``to_bytes`` next to it and matches against the candidates it looks up.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.analysis.audio import INPUT_WHITELIST, QUIET, ffmpeg_binary
from core.contracts.errors import ConfigurationError, EmptyMedia, InvalidMedia, Stalled
from core.contracts.video import Relation

RATE = 11025  # Chromaprint's own rate: ffmpeg resamples to it, so Chromaprint need not
# Chromaprint's hop (a third of its 4096-sample frame, rounded down): one item per hop.
ITEM_S = 1365 / RATE
# The audio one item describes: 20 frames (a 5-frame chroma filter, then classifiers up
# to 16 frames wide) from its start, so a file's last item ends ~2.7 s after it starts.
SPAN_S = (19 * 1365 + 4096) / RATE
ALGORITHM = 1  # Chromaprint's default (TEST2): what fpcalc and AcoustID compute
# ffmpeg decodes and fingerprints audio hundreds of times faster than real time: a call
# past this is hung on damaged media, not slow (core.analysis.audio.DecodeBounds' figures)
TIMEOUT_FIXED_S = 120.0
TIMEOUT_PER_AUDIO_S = 0.25
MAX_AUDIO_S = 6 * 3600.0  # what the timeout is scaled to unless told: settings.max_duration_s' default

# Top bits of an item that vote for an offset: at the right alignment 50-100 % of a
# re-encode's items keep all 16 (Opus 32 kbps the fewest), while a 50 min reference
# holds any one 16-bit key only ~0.4 times by chance.
KEY_BITS = 16
MAX_KEY_REPEATS = 8  # a key more often than this in one file (silence, a held tone) does not vote
CANDIDATES = 8  # best offsets whose bit error is measured item by item
PEAK_GAP_S = 1.0  # offsets closer than this to a better one are the same alignment, not a new one
SMOOTH_S = 3.0  # bit error averaged over this long before the threshold: one item's is noisy
# Shared audio's 3 s average stays <= 0.13 under the benchmark's re-encodes, trims,
# jingles and cuts. Unrelated audio averages ~0.5, but two recordings both drowned in
# pink noise come down to 0.17 on a 3 s window (0.34 on a 10 s one). At 0.30 instead,
# the longest unrelated run under it shrank only from 6.4 to 5.6 s while the noisy
# copies found fell from 10 to 7 of 13 (and 2 % faster ones from 12 to 9).
MAX_BIT_ERROR = 0.35
# Shortest stretch that counts: the longest unrelated run under the threshold was 6.4 s
# (those two noisy recordings); a channel's sting (the benchmark's 6 s) stays under it.
MIN_MATCH_S = 10.0
# Where the shared audio starts in the span of a stretch's first item, and ends in the
# span of its last, where the other side of the boundary is other audio: an item with
# some other audio in its span still passes, more at the end than at the start. Over 59
# boundaries of each (10 recordings cut at 3 places, 6 s of a tone, speech or noise put
# in the cut, MP3 64 kbps) the means were 1.19 and 0.61 s, standard deviations 0.4 and
# 0.3 s. A boundary at either file's start or end is placed to a fraction of an item.
HEAD_EDGE_S = 1.2
TAIL_EDGE_S = 0.6

FORMAT_MAGIC = b"CPFP"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sBBHdI")  # magic, version, algorithm, reserved, item seconds, items


@dataclass(frozen=True)
class Fingerprint:
    """A whole file's Chromaprint: ``items[i]`` describes the ``SPAN_S`` of audio from
    ``i * item_s``."""

    items: np.ndarray  # (n,) uint32
    item_s: float = ITEM_S
    algorithm: int = ALGORITHM

    @property
    def duration_s(self) -> float:
        """The audio the items describe: to the end of the last one's span."""
        return (len(self.items) - 1) * self.item_s + SPAN_S if len(self.items) else 0.0

    def to_bytes(self) -> bytes:
        """A header, then each item XORed with the one before it, deflated: neighbouring
        items share some bits, so this is ~1.4x smaller than the raw 4 bytes an item (as
        small as Chromaprint's own compressed format): ~1.3 KiB an audio minute."""
        items = self.items.astype("<u4")
        delta = items.copy()
        delta[1:] ^= items[:-1]
        header = _HEADER.pack(FORMAT_MAGIC, FORMAT_VERSION, self.algorithm, 0, self.item_s, len(items))
        return header + zlib.compress(delta.tobytes(), 9)

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        if len(data) < _HEADER.size:
            raise ValueError(f"a fingerprint has a {_HEADER.size}-byte header; got {len(data)} bytes")
        magic, version, algorithm, _, item_s, count = _HEADER.unpack_from(data)
        if magic != FORMAT_MAGIC or version != FORMAT_VERSION:
            raise ValueError(f"not a version {FORMAT_VERSION} fingerprint: {magic!r} version {version}")
        try:
            raw = zlib.decompress(data[_HEADER.size :])
        except zlib.error as exc:
            raise ValueError(f"fingerprint body does not inflate: {exc}") from exc
        if len(raw) != 4 * count:
            raise ValueError(f"fingerprint body holds {len(raw) // 4} items, its header says {count}")
        items = np.bitwise_xor.accumulate(np.frombuffer(raw, dtype="<u4")).astype(np.uint32)
        return cls(items=items, item_s=item_s, algorithm=algorithm)


def fingerprint(
    path: Path,
    ffmpeg: str | None = None,
    timeout_s: float | None = None,
    media_s: float | None = None,
) -> Fingerprint:
    """The Chromaprint of a whole audio or video file, from ffmpeg's chromaprint muxer.

    Undecodable input -> InvalidMedia; audio too short for one item (~3 s) -> EmptyMedia;
    an ffmpeg built without the muxer -> ConfigurationError (no attempt on this worker
    would do better); a call past ``timeout_s`` (default: scaled to ``media_s``, else to
    ``MAX_AUDIO_S``) -> Stalled. Silence is kept (``-silence_threshold -1``): trimming it
    would shift every item and break the offsets."""
    if timeout_s is None:
        timeout_s = TIMEOUT_FIXED_S + TIMEOUT_PER_AUDIO_S * (media_s or MAX_AUDIO_S)
    cmd = [
        ffmpeg_binary(ffmpeg),
        *QUIET,
        *INPUT_WHITELIST,
        "-i",
        str(path),
        "-map",
        "0:a:0",
        "-ac",
        "1",
        "-ar",
        str(RATE),
        "-f",
        "chromaprint",
        "-fp_format",
        "raw",
        "-algorithm",
        str(ALGORITHM),
        "-silence_threshold",
        "-1",
        "-",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"no ffmpeg at {cmd[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise Stalled(
            f"ffmpeg's fingerprint of {path.name} ran past {timeout_s:.0f} s",
            details={"step": "fingerprint"},
        ) from exc
    errors = done.stderr.decode(errors="replace").strip().splitlines()
    if done.returncode != 0:
        reason = errors[-1].strip()[:200] if errors else f"exit status {done.returncode}"
        # ffmpeg 5: "Requested output format 'chromaprint' is not a suitable output
        # format"; later ones: "... is not known"
        if any("output format 'chromaprint'" in line for line in errors):
            raise ConfigurationError(f"this ffmpeg has no chromaprint muxer: {reason}")
        raise InvalidMedia(f"ffmpeg could not fingerprint {path.name}: {reason}")
    if len(done.stdout) % 4:
        raise InvalidMedia(
            f"ffmpeg's fingerprint of {path.name} is {len(done.stdout)} bytes, not whole items"
        )
    items = np.frombuffer(done.stdout, dtype="<u4").astype(np.uint32)
    if not len(items):
        raise EmptyMedia(f"{path.name} has too little audio for a fingerprint")
    return Fingerprint(items=items)


@dataclass(frozen=True)
class Overlap:
    """A stretch of audio two files share: where it lies in each, and how alike it is
    (the share of differing bits over the stretch: 0 identical, ~0.5 unrelated)."""

    query_start_s: float
    query_end_s: float
    reference_start_s: float
    reference_end_s: float
    bit_error: float

    @property
    def duration_s(self) -> float:
        return self.query_end_s - self.query_start_s

    @property
    def offset_s(self) -> float:
        """Where the query's start lies in the reference (negative: before it starts)."""
        return self.reference_start_s - self.query_start_s


def bit_errors(query: np.ndarray, reference: np.ndarray, offset: int) -> np.ndarray:
    """Share of differing bits of ``query[i]`` and ``reference[i + offset]`` for every i
    where both exist (the array starts at i = max(0, -offset))."""
    start = max(0, -offset)
    end = min(len(query), len(reference) - offset)
    if end <= start:
        return np.zeros(0, np.float32)
    diff = np.bitwise_xor(query[start:end], reference[start + offset : end + offset])
    share: np.ndarray = np.bitwise_count(diff).astype(np.float32) / np.float32(32.0)
    return share


def _keys(items: np.ndarray) -> np.ndarray:
    """Each item's top bits; -1 where a key repeats too often in the file to mean much."""
    keys = (items >> np.uint32(32 - KEY_BITS)).astype(np.int64)
    values, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    del values
    keys[counts[inverse] > MAX_KEY_REPEATS] = -1
    return keys


def candidate_offsets(query: np.ndarray, reference: np.ndarray, top: int = CANDIDATES) -> list[int]:
    """The shifts (reference item minus query item) most item pairs vote for, best first."""
    qkeys, rkeys = _keys(query), _keys(reference)
    order = np.argsort(rkeys, kind="stable")
    sorted_keys = rkeys[order]
    valid = qkeys >= 0
    lo = np.searchsorted(sorted_keys, qkeys, "left")
    hi = np.searchsorted(sorted_keys, qkeys, "right")
    counts = np.where(valid, hi - lo, 0)
    total = int(counts.sum())
    if not total:
        return []
    q_index = np.repeat(np.arange(len(query)), counts)
    first = np.repeat(lo, counts)
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    r_index = order[first + within]
    shift = len(query) - 1
    votes = np.bincount(r_index - q_index + shift, minlength=len(query) + len(reference) - 1)
    # the copy's item grid falls between the original's: its votes split over two shifts
    votes = votes + np.concatenate(([0], votes[:-1])) + np.concatenate((votes[1:], [0]))
    gap = max(1, round(PEAK_GAP_S / ITEM_S))
    found: list[int] = []
    for index in np.argsort(-votes, kind="stable"):
        if votes[index] <= 1 or len(found) >= top:
            break
        if all(abs(int(index) - f) > gap for f in found):
            found.append(int(index))
    return [f - shift for f in found]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end) index ranges where ``mask`` holds."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def overlaps(query: Fingerprint, reference: Fingerprint, min_match_s: float = MIN_MATCH_S) -> list[Overlap]:
    """Every stretch of at least ``min_match_s`` the two share, longest first, none
    overlapping another in the query (an edit that moves a part shows as two)."""
    if query.algorithm != reference.algorithm or abs(query.item_s - reference.item_s) > 1e-9:
        raise ValueError("fingerprints of different Chromaprint settings do not compare")
    q, r = query.items, reference.items
    width = max(1, round(SMOOTH_S / query.item_s))
    shortest = max(1, round(min_match_s / query.item_s))
    box = np.ones(width, np.float32) / width
    found: list[tuple[int, float, int, int, int]] = []  # (-items, bit error, start, end, offset)
    for best in candidate_offsets(q, r):
        # the peak's neighbours got its split votes: keep whichever aligns the grids best
        offset, errors = min(
            ((o, bit_errors(q, r, o)) for o in (best - 1, best, best + 1)),
            key=lambda oe: float(oe[1].mean()) if len(oe[1]) else 1.0,
        )
        if len(errors) < shortest:
            continue
        # mean over the items the box covers (fewer at the ends)
        smooth = np.convolve(errors, box, mode="same") / np.convolve(np.ones_like(errors), box, mode="same")
        first = max(0, -offset)
        for a, b in _runs(smooth <= MAX_BIT_ERROR):
            if b - a >= shortest:
                found.append((a - b, float(errors[a:b].mean()), first + a, first + b, offset))
    chosen: list[tuple[int, int, int, float]] = []
    for _, error, a, b, offset in sorted(found):
        if all(min(b, cb) - max(a, ca) <= 0 for ca, cb, _, _ in chosen):
            chosen.append((a, b, offset, error))
    return [_overlap(a, b, offset, error, query, reference) for a, b, offset, error in chosen]


def _overlap(
    a: int, b: int, offset: int, error: float, query: Fingerprint, reference: Fingerprint
) -> Overlap:
    """Items [a, b) of the query, [a + offset, b + offset) of the reference, as seconds of
    audio. A stretch that reaches either file's first item starts where that file does,
    one that reaches either's last item ends where that file's audio does; elsewhere a
    boundary lies ``HEAD_EDGE_S`` or ``TAIL_EDGE_S`` into the span of the item where the
    run crossed the threshold. The same shift for both keeps the offset exact."""
    head = 0.0 if a <= 0 or a + offset <= 0 else HEAD_EDGE_S
    last_q, last_r = len(query.items), len(reference.items)
    tail = SPAN_S if b >= last_q or b + offset >= last_r else TAIL_EDGE_S
    item_s = query.item_s
    return Overlap(
        query_start_s=a * item_s + head,
        query_end_s=(b - 1) * item_s + tail,
        reference_start_s=(a + offset) * item_s + head,
        reference_end_s=(b - 1 + offset) * item_s + tail,
        bit_error=error,
    )


def match(query: Fingerprint, reference: Fingerprint) -> Overlap | None:
    """The longest stretch the two share, or None: what a duplicate check asks."""
    found = overlaps(query, reference)
    return found[0] if found else None


# What one side may hold beyond the shared stretches and still count as wholly shared:
# a tenth of it, at least UNMATCHED_S. Same means the new video is not processed, so
# the allowance is audio that may be lost: a tenth of a re-upload (its different intro,
# outro or ad breaks) costs less than a GPU pass over the other nine.
# The floor is for short videos: a trimmed silence, a fade or a station ident, and the
# matcher's own error where a stretch meets other audio (~0.4 s, at worst 1.5 s). 10 s
# would call a clip that is 8 s of speech after a shared 20 s intro a copy of another
# such clip (the benchmark's shared-intro pairs).
UNMATCHED_FRACTION = 0.10
UNMATCHED_S = 5.0


def unmatched_allowance_s(duration_s: float) -> float:
    return max(UNMATCHED_FRACTION * duration_s, UNMATCHED_S)


def _covered_s(spans: list[tuple[float, float]]) -> float:
    """Seconds the union of the spans covers."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def relation(found: Overlap | Sequence[Overlap] | None, new_s: float, committed_s: float) -> Relation | None:
    """How a new video (the query) relates to a committed one (the reference), from the
    stretches they share (``match``'s one or ``overlaps``' all: an ad break cut into a
    re-upload splits it in two) and both durations; None where they share nothing."""
    stretches = [found] if isinstance(found, Overlap) else list(found or [])
    if not stretches:
        return None
    new_rest = new_s - _covered_s([(o.query_start_s, o.query_end_s) for o in stretches])
    committed_rest = committed_s - _covered_s([(o.reference_start_s, o.reference_end_s) for o in stretches])
    new_inside = new_rest <= unmatched_allowance_s(new_s)
    committed_inside = committed_rest <= unmatched_allowance_s(committed_s)
    if new_inside and committed_inside:
        return Relation.SAME
    if new_inside:
        return Relation.CONTAINED
    if committed_inside:
        return Relation.CONTAINS
    return Relation.PARTIAL
