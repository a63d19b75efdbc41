"""The pyannote backend end to end on real audio, with a random-weight local model.

The real weights cannot be downloaded here (see tests/pyannote_local.py), so these
tests check the plumbing, not the quality: loading through ``Pipeline.from_pretrained``,
in-memory waveform input, conversion to ``Segment`` and relabelling. Speakers found by
random weights are meaningless, so no assertion is about who speaks when.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.diarization.pyannote_backend import PyannoteDiarization, PyannoteModelUnavailable
from core.models import Segment
from tests.pyannote_local import build_local_pipeline

AUDIO = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "eval"
    / "diarization"
    / "audio"
    / "pyannote_sample.wav"
)
CLIP_S = 30.0
TOLERANCE_S = 0.05
LABEL = re.compile(r"^SPEAKER_\d\d$")

# pyannote probes the embedding model's shortest input with a few samples, where the
# statistics pooling has one frame; the warning is pyannote's own and harmless.
pytestmark = pytest.mark.filterwarnings(r"ignore:std\(\). degrees of freedom:UserWarning")


@pytest.fixture(scope="module")
def local_model(tmp_path_factory) -> Path:
    return build_local_pipeline(tmp_path_factory.mktemp("pyannote") / "model")


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
        yield PyannoteDiarization(
            str(local_model), None, segmentation_batch_size=16, embedding_batch_size=16
        )
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
    print(f"pyannote backend: {cpu_s:.1f} CPU s for {duration:.0f} s of audio "
          f"({60 * cpu_s / duration:.1f} CPU s per audio minute)")

    assert isinstance(segments, list)
    assert segments, "the local model is biased towards speech: turns are expected"
    for seg in segments:
        assert isinstance(seg, Segment)
        assert 0.0 <= seg.start < seg.end <= duration + TOLERANCE_S
        assert LABEL.fullmatch(seg.speaker)
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    # relabel(): speakers are numbered in order of first appearance
    first_seen = list(dict.fromkeys(s.speaker for s in segments))
    assert first_seen == [f"SPEAKER_{i:02d}" for i in range(len(first_seen))]


def test_bare_annotation_output_is_converted_and_clamped(backend, monkeypatch):
    """pyannote 3.x (or legacy=True) returns an Annotation instead of DiarizeOutput."""
    from pyannote.core import Annotation
    from pyannote.core import Segment as Turn

    annotation = Annotation()
    annotation[Turn(5.0, 7.0)] = "B"
    annotation[Turn(0.5, 2.0)] = "A"
    annotation[Turn(9.0, 10.4)] = "B"  # ends past the audio: clamped to 10 s
    calls = []

    def fake_pipeline(file):
        calls.append(file)
        return annotation

    monkeypatch.setattr(backend, "_pipeline", fake_pipeline)
    segments = backend.diarize(np.zeros(160000, dtype=np.float32), 16000).segments

    assert segments == [
        Segment(start=0.5, end=2.0, speaker="SPEAKER_00"),
        Segment(start=5.0, end=7.0, speaker="SPEAKER_01"),
        Segment(start=9.0, end=10.0, speaker="SPEAKER_01"),
    ]
    # the waveform goes in memory, as a (channel, sample) tensor, never as a path
    (file,) = calls
    assert set(file) == {"waveform", "sample_rate"}
    assert tuple(file["waveform"].shape) == (1, 160000)
    assert file["sample_rate"] == 16000


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

    started = time.monotonic()
    with pytest.raises(PyannoteModelUnavailable) as info:
        PyannoteDiarization("pyannote/no-such-pipeline-for-tests", None)
    assert time.monotonic() - started < 10
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
