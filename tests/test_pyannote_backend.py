"""The pyannote backend end to end on real audio, in pyannote 4's real output shape.

The local model (benchmarks/pyannote_local.py) has community-1's layout with the real
segmentation-3.0 weights and a random speaker embedding (the real one cannot be
downloaded here). So speech activity is real and checked against the reference; who
is who is not, and no assertion is about it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.analysis.diarization.pyannote_backend import PyannoteDiarization, PyannoteModelUnavailable
from core.contracts.video import Segment

AUDIO = (
    Path(__file__).resolve().parents[2] / "shared" / "eval" / "diarization" / "audio" / "pyannote_sample.wav"
)
RTTM = AUDIO.parents[1] / "rttm" / "pyannote_sample.rttm"
CLIP_S = 30.0
TOLERANCE_S = 0.05
LABEL = re.compile(r"^SPEAKER_\d\d$")

# pyannote probes the embedding model's shortest input with a few samples, where the
# statistics pooling has one frame; the warning is pyannote's own and harmless.
pytestmark = pytest.mark.filterwarnings(r"ignore:std\(\). degrees of freedom:UserWarning")


@pytest.fixture(scope="module")
def local_model(pyannote_model) -> Path:
    return pyannote_model


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, int]:
    assert AUDIO.is_file(), f"evaluation audio missing: {AUDIO}"
    samples, rate = sf.read(AUDIO, dtype="float32", always_2d=False)
    assert rate == 16000 and samples.ndim == 1, "the sample is 16 kHz mono"
    return samples[: int(CLIP_S * rate)], rate


@pytest.fixture(scope="module")
def backend(local_model):
    """The backend on the random local model, run on one CPU thread.

    Batch 16: on CPU larger batches are no faster, and they cost memory. One intra-op
    thread: on a shared 2-core runner a second thread mostly spins, costing ~30% more
    CPU time for little wall time; the previous setting is restored afterwards.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield PyannoteDiarization(str(local_model), None, segmentation_batch_size=16, embedding_batch_size=16)
    finally:
        torch.set_num_threads(threads)


def test_name_names_model_and_version(backend):
    import pyannote.audio

    assert backend.name == f"pyannote-model-{pyannote.audio.__version__}"


def test_diarize_real_audio_gives_valid_segments(backend, clip):
    samples, rate = clip
    duration = len(samples) / rate

    started = time.process_time()
    segments = backend.diarize(samples, rate).segments
    cpu_s = time.process_time() - started
    print(
        f"pyannote backend: {cpu_s:.1f} CPU s for {duration:.0f} s of audio "
        f"({60 * cpu_s / duration:.1f} CPU s per audio minute)"
    )

    assert segments, "real segmentation hears the speech"
    for seg in segments:
        assert isinstance(seg, Segment)
        assert 0.0 <= seg.start < seg.end <= duration + TOLERANCE_S
        assert LABEL.fullmatch(seg.speaker)
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    # relabel(): speakers are numbered in order of first appearance
    first_seen = list(dict.fromkeys(s.speaker for s in segments))
    assert first_seen == [f"SPEAKER_{i:02d}" for i in range(len(first_seen))]


def test_speech_activity_matches_the_reference(backend, clip):
    """segmentation-3.0's speech, through pyannote's pipeline and the backend's
    conversion, against the annotated reference: measured 0.99 recall and 0.997
    precision on this clip; the ceilings leave 0.04. Marking everything as speech
    would score 0.75 precision here and fail."""
    samples, rate = clip
    hypothesis = frames([(s.start, s.end) for s in backend.diarize(samples, rate).segments])
    reference = frames(
        [
            (float(f[3]), float(f[3]) + float(f[4]))
            for f in (line.split() for line in RTTM.read_text().splitlines())
        ]
    )
    hit = (hypothesis & reference).sum()
    recall, precision = hit / reference.sum(), hit / hypothesis.sum()
    print(f"pyannote backend speech: recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= 0.95 and precision >= 0.95
    assert reference.mean() < 0.95, "the clip has silence, so precision can fail"


def frames(spans: list[tuple[float, float]]) -> np.ndarray:
    """10 ms frames of the clip covered by any of ``spans``."""
    grid = np.zeros(int(CLIP_S * 100), dtype=bool)
    for start, end in spans:
        grid[int(start * 100) : int(min(end, CLIP_S) * 100)] = True
    return grid


def test_cuda_oom_is_raised_by_the_models_forward_on_a_too_large_batch(backend, clip, monkeypatch):
    """PIPELINE_FAULT_OOM_ABOVE_BATCH raises CUDA's OOM error in the models' forward pass
    on a larger batch, as a GPU would; the activity's halving (activities/model_stage.py)
    then retries with a smaller batch, which goes through."""
    import torch

    samples, rate = clip
    monkeypatch.setenv("PIPELINE_FAULT_OOM_ABOVE_BATCH", "4")
    with pytest.raises(torch.cuda.OutOfMemoryError, match=r"ABOVE_BATCH=4, batch [5-8]\)"):
        backend.diarize(samples[: 12 * rate], rate, batch_size=8)
    assert backend.diarize(samples[: 12 * rate], rate, batch_size=4).segments


def test_diarize_empty_audio_gives_no_segments(backend):
    assert backend.diarize(np.zeros(0, dtype=np.float32), 16000).segments == []


def test_diarize_rejects_multichannel(backend):
    with pytest.raises(ValueError, match="mono"):
        backend.diarize(np.zeros((2, 16000), dtype=np.float32), 16000)


def test_unknown_hub_model_without_token_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach the network
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: patch its constant too
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    with pytest.raises(PyannoteModelUnavailable) as info:
        PyannoteDiarization("pyannote/no-such-pipeline-for-tests", None)
    message = str(info.value)
    assert "pyannote/no-such-pipeline-for-tests" in message
    assert "HF_TOKEN" in message


def test_hub_error_never_shows_the_token(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    secret = "hf_secretTokenThatMustNotLeak123"
    with pytest.raises(PyannoteModelUnavailable) as info:
        PyannoteDiarization("pyannote/no-such-pipeline-for-tests", secret)
    assert secret not in str(info.value)
    assert secret not in repr(info.value)


def test_local_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="config.yaml"):
        PyannoteDiarization(str(tmp_path), None)
