"""A second opinion on where speech is: silero-vad vetoes segmentation's false alarms.

segmentation-3.0 calls some non-speech speech: room noise and breathing between AMI
turns, music in the long-form builds. silero-vad (core/analysis/vad.py, weights in its wheel) is
near zero there, while it stays above a few percent on the quiet far-field speech that
segmentation does find. So frames where silero's speech probability, averaged over
VETO_SMOOTH_S, is below VETO_PROB keep no speaker. It only removes speech, never adds
any: silero misses the same faint speech segmentation misses, and filling gaps from it,
or from a lower segmentation threshold where silero agrees, added more false alarm on
the long-form builds' music than it removed miss.

Chunked extraction: each window owns the stretch from its start to the next window's
(the last window: to its end) and runs silero there, with CONTEXT_S of audio before it
to settle silero's recurrent state. The owned stretches tile the recording, so every
frame gets exactly one opinion, computed from the same samples whichever chunk holds
the window, at about 1.4 times silero's cost over the audio. The measured gain and cost
are in benchmarks/README.md.
"""

from __future__ import annotations

import numpy as np

from core.analysis import vad
from core.analysis.audio import Samples

VETO_PROB = 0.02  # silero speech probability (smoothed) under which a frame has no speaker
VETO_SMOOTH_S = 1.0  # moving-average length of silero's probability before the veto
CONTEXT_S = 1.0  # audio silero sees before a window's own stretch (state settling)
STEP_S = vad.VAD_CHUNK / vad.VAD_RATE  # one silero probability per 32 ms


def owned_frames(offsets: np.ndarray, next_offsets: np.ndarray, n_frames: int) -> np.ndarray:
    """Frames of each window (local index) that it owns on the recording's grid:
    [0, next window's first frame - its own), all of them for the last window (-1)."""
    own = np.where(next_offsets < 0, n_frames, next_offsets - offsets)
    return np.clip(own, 0, n_frames)


def window_speech(
    samples: Samples,
    rate: int,
    offsets: np.ndarray,
    next_offsets: np.ndarray,
    n_frames: int,
    frame_step: float,
    frame_centre: float,
) -> np.ndarray:
    """(windows, frames) silero speech probability on the frames each window owns, NaN
    elsewhere (float16). ``offsets``: each window's first frame on the recording's grid;
    ``next_offsets``: the next window's (-1 for the recording's last window)."""
    out = np.full((len(offsets), n_frames), np.nan, dtype=np.float16)
    own = owned_frames(offsets, next_offsets, n_frames)
    for w, (o, k) in enumerate(zip(offsets, own)):
        if k <= 0:
            continue
        times = (o + np.arange(k)) * frame_step + frame_centre  # frame centres, s
        first = max(0, int(round((times[0] - frame_step / 2 - CONTEXT_S) * rate)))
        last = min(len(samples), int(np.ceil((times[-1] + frame_step) * rate)))
        if last <= first:
            out[w, :k] = 0.0
            continue
        probs = vad.speech_probabilities(samples[first:last])
        index = np.clip(((times - first / rate) / STEP_S).astype(int), 0, len(probs) - 1)
        out[w, :k] = probs[index]
    return out


def speech_mask(summed: np.ndarray, seen: np.ndarray, frame_step: float) -> np.ndarray:
    """Frames where speech is allowed: silero's probability (summed over the owning
    windows, ``seen`` of them; frames no window owns are allowed), smoothed over
    VETO_SMOOTH_S, at least VETO_PROB."""
    known = seen > 0
    prob = np.where(known, summed / np.maximum(seen, 1), 0.0)
    width = max(1, int(round(VETO_SMOOTH_S / frame_step)))
    kernel = np.ones(width)
    smoothed = np.convolve(prob, kernel, mode="same") / np.maximum(
        np.convolve(known.astype(float), kernel, mode="same"), 1e-9
    )
    return np.asarray(~known | (smoothed >= VETO_PROB))
