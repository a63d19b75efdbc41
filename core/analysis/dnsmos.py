"""DNSMOS P.835 (SIG, BAK, OVRL), as the quality labels run it.

DNSMOS is most of the labels' cost: a fixed 9.01 s input per inference, whatever the
span's length. So it is kept apart from the labels measured on samples alone
(core/analysis/quality.py), with what decides that cost: which spans are scored together
(``turns``), how many windows each gets (``dnsmos_windows``), and the ONNX session
batching them; and with what makes its scores Microsoft's (the window length and the
per-dimension polynomials, as speechmos runs the model).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from core.analysis import exported
from core.analysis.audio import Samples

# DNSMOS, as speechmos/dnsmos.py (speechmos 0.0.1.1) runs Microsoft's model: 9.01 s of
# 16 kHz audio per inference, shorter audio repeated end to end until it fills one, and a
# per-dimension polynomial mapping raw outputs to MOS (its non-personalized branch).
DNSMOS_RATE = 16_000
DNSMOS_WINDOW = int(9.01 * DNSMOS_RATE)
POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
POLY_OVRL = (-0.06766283, 1.11546468, 0.04602535)
# The reference averages a window at every 1 s hop. DNSMOS inference is most of the labels'
# cost (a fixed 9.01 s input, whatever the span's length), so a span gets one centred
# window per started WINDOW_EVERY_S, at most MAX_WINDOWS (quality rarely changes within
# one speaker's turn), and spans shorter than the shortest training clip get none.
TURN_GAP_S = 1.0  # pauses within one speaker's turn
MIN_DNSMOS_S = (
    3.0  # shorter: no clip is cut from it (ClipPolicy.min_s), and repeated to 9 s it is the same syllables
)
WINDOW_EVERY_S = 30.0
MAX_WINDOWS = 2
# Windows per onnxruntime call. The session's memory arena grows with it (on CPU, one
# window: +0.2 GB, eight: +1.1 GB held for the worker's life) and the speed does not.
DNSMOS_BATCH = 1


class Dnsmos:
    """The DNSMOS session, loaded once per process and reused for every recording."""

    def __init__(self, threads: int | None = None, block_s: float = 0.0) -> None:
        """``block_s`` > 0: DNSMOS scores each speaker once per block of the recording
        (``turns``), on one window of their speech there, not each turn: a fraction of
        the CPU, at the price of per-turn detail. ``threads``: the process's share
        (core.analysis.threads) unless given."""
        import onnxruntime as ort

        from core.analysis import threads as model_threads

        self.block_s = block_s
        import speechmos

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or model_threads.count()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting CPU
        model = Path(speechmos.__file__).parent / "dnsmos_models" / "sig_bak_ovr.onnx"
        self.session = ort.InferenceSession(str(model), options, providers=exported.providers())

    def dnsmos(
        self,
        analysis: Samples,
        rate: int,
        spans: list[tuple[float, float]],
        speakers: list[str] | None = None,
    ) -> list[tuple[float, float, float] | None]:
        """(SIG, BAK, OVRL) per span: the mean over the windows of its turn (``turns``);
        None when the turn is shorter than MIN_DNSMOS_S."""
        if rate != DNSMOS_RATE:
            raise ValueError(f"DNSMOS needs {DNSMOS_RATE} Hz audio, got {rate}")
        groups = turns(spans, speakers, self.block_s)
        owners, windows = [], []
        for g, members in enumerate(groups):  # a group's speech: its spans end to end
            speech = [span_slice(*spans[i], rate, len(analysis)) for i in sorted(members)]
            length = sum(piece.stop - piece.start for piece in speech)
            if length >= MIN_DNSMOS_S * rate:
                for a, b in window_ranges(length, 1 if self.block_s else MAX_WINDOWS):
                    owners.append(g)
                    windows.append(_fill(_joined(analysis, speech, a, b)))
        raw, owner = self._infer(windows), np.asarray(owners, dtype=np.int64)
        mos = np.stack([np.polyval(poly, raw[:, d]) for d, poly in enumerate(_POLYS)], axis=1)
        counts = np.bincount(owner, minlength=len(groups))
        sums = np.stack([np.bincount(owner, mos[:, d], minlength=len(groups)) for d in range(3)], axis=1)
        scores: list[tuple[float, float, float] | None] = [None] * len(spans)
        for g, members in enumerate(groups):
            if counts[g]:
                for i in members:
                    scores[i] = tuple(round(float(v), 3) for v in sums[g] / counts[g])  # type: ignore[assignment]
        return scores

    def _infer(self, windows: list[np.ndarray]) -> np.ndarray:
        out = [np.zeros((0, 3), dtype=np.float32)]
        for b in range(0, len(windows), DNSMOS_BATCH):
            batch = np.stack(windows[b : b + DNSMOS_BATCH]).astype(np.float32)
            out.append(self.session.run(None, {"input_1": batch})[0])
        return np.concatenate(out)


_POLYS = (POLY_SIG, POLY_BAK, POLY_OVRL)  # the model outputs SIG, BAK, OVRL in this order


def turns(
    spans: list[tuple[float, float]], speakers: list[str] | None, block_s: float = 0.0
) -> list[list[int]]:
    """Span indices grouped into what DNSMOS scores once. DNSMOS costs one fixed-length
    inference per window whatever the span's length, and a speaker's microphone and room
    do not change between two sentences, so:
    - ``block_s`` > 0: all spans of one speaker within one block of the recording;
    - else a turn: one speaker's consecutive spans with pauses of at most TURN_GAP_S;
    - without speakers, each span alone."""
    if speakers is None:
        return [[i] for i in range(len(spans))]
    groups: list[list[int]] = []
    if block_s > 0:
        keyed: dict[tuple[str, int], int] = {}
        for i in sorted(range(len(spans)), key=lambda k: spans[k]):
            key = (speakers[i], int(spans[i][0] // block_s))
            if key not in keyed:
                keyed[key] = len(groups)
                groups.append([])
            groups[keyed[key]].append(i)
        return groups
    open_turn: dict[str, tuple[int, float]] = {}  # speaker -> (group, its end so far)
    for i in sorted(range(len(spans)), key=lambda k: spans[k]):
        start, end = spans[i]
        current = open_turn.get(speakers[i])
        if current is not None and start - current[1] <= TURN_GAP_S:
            groups[current[0]].append(i)
            open_turn[speakers[i]] = (current[0], max(current[1], end))
        else:
            groups.append([i])
            open_turn[speakers[i]] = (len(groups) - 1, end)
    return groups


def dnsmos_windows(audio: np.ndarray, max_windows: int = MAX_WINDOWS) -> list[np.ndarray]:
    """DNSMOS_WINDOW-long inputs for one span (``window_ranges``)."""
    return [_fill(audio[a:b]) for a, b in window_ranges(len(audio), max_windows)]


def window_ranges(length: int, max_windows: int = MAX_WINDOWS) -> list[tuple[int, int]]:
    """Where the DNSMOS windows of ``length`` samples of speech lie: all of it if shorter
    than one window (repeated end to end to fill it, as the reference does; it then also
    averages the 1 s hops through the repetition, which only shift the same audio: one
    is taken here), else one centred window per started WINDOW_EVERY_S, at most
    ``max_windows``."""
    if length < DNSMOS_WINDOW:
        return [(0, length)]
    n = min(max_windows, max(1, math.ceil(length / DNSMOS_RATE / WINDOW_EVERY_S)))
    centres = (np.arange(n) + 0.5) * length / n
    starts = np.clip(centres - DNSMOS_WINDOW / 2, 0, length - DNSMOS_WINDOW).astype(int)
    return [(int(s), int(s) + DNSMOS_WINDOW) for s in starts]


def _fill(audio: np.ndarray) -> np.ndarray:
    """One DNSMOS input: ``audio`` repeated end to end to DNSMOS_WINDOW samples."""
    return audio if len(audio) == DNSMOS_WINDOW else np.resize(audio, DNSMOS_WINDOW)


def _joined(analysis: Samples, pieces: list[slice], a: int, b: int) -> np.ndarray:
    """Samples a..b-1 of ``pieces`` of ``analysis`` laid end to end, reading only those:
    a speaker's speech in an hour-long block is minutes of audio, its window 9 s."""
    out, offset = [], 0
    for piece in pieces:
        size = piece.stop - piece.start
        lo, hi = max(a, offset), min(b, offset + size)
        if lo < hi:
            out.append(analysis[piece.start + lo - offset : piece.start + hi - offset])
        offset += size
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def span_slice(start: float, end: float, rate: int, n: int) -> slice:
    """The samples of [start, end) s at ``rate``, within ``n`` samples."""
    a = min(max(0, round(start * rate)), n)
    return slice(a, min(max(a, round(end * rate)), n))
