"""The long-audio guard: over ten minutes of real speech keeps its speakers counted and apart.

Why: episodes are 30-120 minutes long, and a backend can fail in ways only long audio
shows: one cluster for the whole episode, or the same host split into many as chunks
pile up. The dev files are 18-42 s long, and the long-form test (test_longform_benchmark)
runs minutes. Here six voices of two real meetings (AMI dev00 and dev01: MEE009 and
MEE012; trn07 and trn08: FEE087, FEE088, MEE089, MEO086) come back again and again for
over ten minutes, between music interludes, and the default backend diarizes it chunk
by chunk then clusters once, as the diarize activity does.

The bounds are measured figures plus a margin, never tuned to pass (the closing notes of
issues 23 and 27 give them and the command): 9 speakers found for 6 and DER 0.402
(average-linkage), then 0.313 (issue 27: a recording this short still takes
average-linkage's first pass, then the merge and the block re-check), so the count
may be off by at most 3 and DER must stay under ``DER_CEILING``. And the turns found must beat the same turns
all given one label (what a collapse produces) by ``BEAT_COLLAPSE``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks.longform import build, load_interludes, load_sources, shuffled_rounds
from benchmarks.quality import der
from core.analysis.diarization.pretrained import PretrainedDiarization
from core.service.settings import Settings

VOICES = ["pyannote_debug_dev00", "pyannote_debug_dev01", "pyannote_debug_trn07", "pyannote_debug_trn08"]
REPEATS = 5  # 4 x 30 s excerpts per layout, 5 layouts: 10 minutes of meetings (6 of talk), plus music
MEASURED_COUNT_ERROR = 3  # 9 found for 6
DER_CEILING = 0.50  # measured 0.402 + 0.10
BEAT_COLLAPSE = 0.10  # measured: the same turns under one label score 0.587
RATE = 16_000


@pytest.fixture(scope="module")
def recording(eval_dir):
    with tempfile.TemporaryDirectory(prefix="long-audio-") as tmp:
        sources = [s for s in load_sources(eval_dir / "diarization", None, Path(tmp)) if s.uri in VOICES]
        clips = load_interludes(eval_dir / "music", Path(tmp))
    assert sorted(s.uri for s in sources) == VOICES and clips, "the eval set changed"
    rng = np.random.default_rng(23)
    return build("long-audio", shuffled_rounds(sources, REPEATS, rng), clips, rng)


def test_over_ten_minutes_of_six_recurring_voices_keeps_count_and_who_is_who(recording):
    assert recording.duration >= 600 and recording.speech_s >= 300, recording.summary()
    assert len(recording.speakers) == 6, recording.speakers
    backend = PretrainedDiarization()
    chunk_s = Settings().chunk_s  # the production chunking: features per chunk, one clustering
    chunks = [
        backend.extract(recording.samples, RATE, i * chunk_s, (i + 1) * chunk_s, 8)
        for i in range(math.ceil(recording.duration / chunk_s))
    ]
    found = backend.finish(chunks, recording.duration).segments
    n_est = len({s.speaker for s in found})
    error = der(recording.reference, found, recording.scored)
    collapsed = der(
        recording.reference, [s.model_copy(update={"speaker": "ONE"}) for s in found], recording.scored
    )
    print(
        f"\nlong audio: {recording.summary()}; found {n_est} speakers, DER {error:.3f} "
        f"(the same turns under one label: {collapsed:.3f})"
    )
    assert abs(n_est - 6) <= MEASURED_COUNT_ERROR, f"{n_est} speakers found for 6"
    assert error < DER_CEILING, f"DER {error:.3f}"
    assert error < collapsed - BEAT_COLLAPSE, (error, collapsed)
