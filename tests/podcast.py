"""A podcast-like committed video built from real speech, for the clip and shard tests:
the annotated evaluation files at 48 kHz one after another with pauses, their
reference turns as the diarization, and a 90 s monologue with a jingle in it (its turn
long enough to need splitting); the metadata rows come from
core.store.outputs.annotate_segments, as in a committed metadata.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from core.contracts.rttm import read_rttm
from core.contracts.video import MusicRegion, Segment
from core.store.outputs import UsableRules, annotate_segments
from tests.conftest import EVAL

RATE = 48_000
PAUSE_S = 1.5
MONOLOGUE = ("falcon_test", "pyannote_sample", "pyaa_diarizationExample")
JINGLE = (70.0, 74.0)  # seconds into the monologue: music, so not usable
LABELS = {
    "dnsmos_sig": 3.6,
    "dnsmos_bak": 4.0,
    "dnsmos_ovrl": 3.2,
    "bandwidth_hz": 7800.0,
    "snr_db": 24.5,
    "clipping": 0.0,
    "loudness_lufs": -19.0,
    "music": 0.02,
    "singing": None,
}


def _speech(name: str) -> np.ndarray:
    samples, rate = sf.read(EVAL / "diarization" / "audio" / f"{name}.wav", dtype="float32")
    return resample_poly(samples, RATE // rate, 1).astype(np.float32)


def _turns(name: str, offset: float) -> list[Segment]:
    turns = read_rttm(EVAL / "diarization" / "rttm" / f"{name}.rttm")
    return [Segment(start=offset + t.start, end=offset + t.end, speaker=t.speaker) for t in turns]


def build_podcast(directory: Path, video_id: str = "pod1") -> tuple[Path, dict]:
    """A 48 kHz mono 16-bit original.wav and its metadata (the shape metadata_model writes)."""
    rng = np.random.default_rng(7)
    names = sorted(p.stem for p in (EVAL / "diarization" / "audio").glob("*.wav") if p.stem not in MONOLOGUE)
    pieces, segments, cursor = [], [], PAUSE_S
    pieces.append(np.zeros(int(PAUSE_S * RATE), np.float32))
    for name in names:
        audio = _speech(name)
        segments += _turns(name, cursor)
        pieces += [audio, np.zeros(int(PAUSE_S * RATE), np.float32)]
        cursor += (len(audio) + int(PAUSE_S * RATE)) / RATE
    monologue = np.concatenate([_speech(n) for n in MONOLOGUE])
    segments.append(Segment(start=cursor, end=cursor + len(monologue) / RATE - 0.2, speaker="HOST"))
    music = [MusicRegion(start=cursor + JINGLE[0], end=cursor + JINGLE[1], probability=0.9)]
    pieces += [monologue, np.zeros(RATE, np.float32)]
    audio = np.concatenate(pieces)
    audio += rng.normal(0, 10 ** (-70 / 20), len(audio)).astype(np.float32)  # a room's noise floor
    path = directory / "original.wav"
    sf.write(path, np.clip(audio, -1, 1), RATE, subtype="PCM_16")
    rows = annotate_segments(segments, music, UsableRules(min_s=1.0))
    for i, row in enumerate(rows):
        if i % 3 == 0:  # a third of the rows from an older commit, without labels
            continue
        row["labels"] = {**LABELS, "snr_db": None if i % 3 == 1 else 10.0 + i}
    duration = len(audio) / RATE
    metadata = {
        "schema_version": 2,
        "video_id": video_id,
        "batch_id": "b1",
        "duration_s": round(duration, 3),
        "num_speakers": len({s.speaker for s in segments}),
        "speakers": {s.speaker: {"speech_s": 0.0, "centroid": []} for s in segments},
        "segments": rows,
        "music": [m.model_dump() for m in music],
    }
    return path, metadata
