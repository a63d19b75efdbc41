"""pyannote.audio SpeakerDiarization as a diarization backend.

Production points ``model`` at ``pyannote/speaker-diarization-community-1`` on the
Hugging Face hub (gated: it needs an ``hf_...`` token whose account accepted the
model's conditions) and runs it on a GPU. ``model`` may also be a local directory with
the same layout (config.yaml + segmentation/ + embedding/ + plda/), for air-gapped
workers or tests; the loading code is the same, ``Pipeline.from_pretrained``.

The pipeline loads once, in ``__init__``, and stays in (GPU) memory; calls to
``diarize`` are serialised because one pipeline holds one set of model buffers and a
worker may run activities in several threads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, cast

# pyannote.audio 4.x sends usage telemetry unless this is "0": on an offline worker
# each load would wait on the network. It must be set before pyannote is imported.
os.environ["PYANNOTE_METRICS_ENABLED"] = "0"

import numpy as np  # noqa: E402

from core.analysis.diarization import DiarizationOutput, relabel  # noqa: E402
from core.contracts.errors import ConfigurationError  # noqa: E402
from core.contracts.video import Segment  # noqa: E402
from core.service import faults  # noqa: E402

if TYPE_CHECKING:
    import torch
    from pyannote.audio import Pipeline
    from pyannote.audio.pipelines.speaker_diarization import DiarizeOutput

PIPELINE_CONFIG = "config.yaml"


class PyannoteModelUnavailable(ConfigurationError, ValueError):
    """The pyannote pipeline could not be loaded: a configuration problem, not the input's.

    A ConfigurationError, so an activity that meets it fails at once, non-retryable,
    under this name; the worker loads the backend before it polls (workers/worker.py),
    so a node set up wrong exits instead of taking tasks. A ValueError too: what was
    configured (PIPELINE_PYANNOTE_MODEL, HF_TOKEN) is the bad value."""


def _looks_local(model: str) -> bool:
    """A filesystem path rather than a hub id ("owner/name")."""
    return model.startswith(("/", "./", "../", "~")) or os.path.exists(model)


class PyannoteDiarization:
    """Diarize with a pyannote.audio ``SpeakerDiarization`` pipeline.

    Parameters
    ----------
    model:
        Hub id (e.g. ``pyannote/speaker-diarization-community-1``) or path to a local
        model directory holding ``config.yaml``.
    token:
        Hugging Face token (``hf_...``) for gated hub models; ``None`` for local
        directories. Never logged nor put in error messages.
    segmentation_batch_size, embedding_batch_size:
        pyannote defaults to 1, which leaves a GPU mostly idle and is ~3x slower on
        CPU; 32 keeps a GPU busy at a few hundred MB of memory.
    """

    def __init__(
        self,
        model: str,
        token: str | None,
        segmentation_batch_size: int = 32,
        embedding_batch_size: int = 32,
    ) -> None:
        import pyannote.audio
        import torch

        model = str(model)
        self.model = model
        self.name = f"pyannote-{Path(model.rstrip('/')).name}-{pyannote.audio.__version__}"
        self._pipeline = self._load(model, token)
        self._pipeline.segmentation_batch_size = segmentation_batch_size
        self._pipeline.embedding_batch_size = embedding_batch_size
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            self._pipeline.to(self.device)
        self._lock = threading.Lock()
        # where a GPU runs out of memory: each model's forward pass on a batch. The fault
        # hook is a no-op unless PIPELINE_FAULT_OOM_ABOVE_BATCH is set (core/service/faults.py)
        for net in _pipeline_models(self._pipeline):
            net.register_forward_pre_hook(lambda _module, args: faults.check_batch_memory(args[0].shape[0]))

    @staticmethod
    def _load(model: str, token: str | None) -> Pipeline:
        from pyannote.audio import Pipeline

        if _looks_local(model):
            directory = Path(model).expanduser()
            if not (directory / PIPELINE_CONFIG).is_file():
                raise PyannoteModelUnavailable(
                    f"local pyannote model {str(directory)!r} has no {PIPELINE_CONFIG}: "
                    "point PIPELINE_PYANNOTE_MODEL at a directory laid out like "
                    "pyannote/speaker-diarization-community-1 (config.yaml, "
                    "segmentation/, embedding/, plda/), or at a hub id"
                )
            try:
                local = Pipeline.from_pretrained(str(directory))
            except Exception as exc:  # a config.yaml that does not load: still the setup's fault
                raise PyannoteModelUnavailable(
                    f"cannot load local pyannote model {str(directory)!r}: {type(exc).__name__}: {exc}"
                ) from None
            assert local is not None  # from_pretrained returns None only for a hub id
            return local

        try:
            pipeline = Pipeline.from_pretrained(model, token=token)
        except Exception as exc:  # hub/HTTP/offline/cache errors: all mean "cannot load"
            raise PyannoteModelUnavailable(_hub_hint(model, token, exc)) from None
        if pipeline is None:
            raise PyannoteModelUnavailable(_hub_hint(model, token, None))
        return pipeline

    def diarize(self, samples: np.ndarray, rate: int, batch_size: int | None = None) -> DiarizationOutput:
        """Speaker turns of mono float32 audio, labelled SPEAKER_00.. by first appearance.

        The waveform goes to pyannote in memory: decoding a file again would cost time
        and need the audio written to disk.
        """
        import torch

        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected mono samples (1-D), got shape {samples.shape}")
        if samples.size == 0:
            return DiarizationOutput([])
        duration = samples.size / rate
        waveform = torch.from_numpy(np.ascontiguousarray(samples)).unsqueeze(0)
        with self._lock:
            if batch_size:  # the activity halves it after a CUDA OOM
                self._pipeline.segmentation_batch_size = batch_size
                self._pipeline.embedding_batch_size = batch_size
            # one file in, one SpeakerDiarization output out (a list would give an iterator)
            output = cast("DiarizeOutput", self._pipeline({"waveform": waveform, "sample_rate": rate}))
        segments = []
        for turn, _track, speaker in output.speaker_diarization.itertracks(yield_label=True):
            start = round(max(0.0, float(turn.start)), 3)
            end = round(min(duration, float(turn.end)), 3)
            if end > start:
                segments.append(Segment(start=start, end=end, speaker=str(speaker)))
        return DiarizationOutput(relabel(segments))


def _pipeline_models(pipeline: object) -> list[torch.nn.Module]:
    """The torch modules of a SpeakerDiarization pipeline (segmentation, embedding)."""
    segmentation = getattr(getattr(pipeline, "_segmentation", None), "model", None)
    embedding = getattr(getattr(pipeline, "_embedding", None), "model_", None)
    return [m for m in (segmentation, embedding) if m is not None]


def _hub_hint(model: str, token: str | None, exc: Exception | None) -> str:
    """An actionable message for a hub model that did not load; never includes the token."""
    reason = f"{type(exc).__name__}: {exc}" if exc is not None else "from_pretrained returned None"
    if token is None:
        auth = "no Hugging Face token was given (set HF_TOKEN to an hf_... token)"
    elif not token.startswith("hf_"):
        auth = (
            "the token given does not start with 'hf_', so pyannote does not send it "
            "to the hub (set HF_TOKEN to a Hugging Face access token)"
        )
    else:
        auth = "a Hugging Face token was given"
    return (
        f"cannot load pyannote pipeline {model!r} from the Hugging Face hub: {auth}. "
        f"Check that the id exists, that the token's account accepted its conditions at "
        f"https://hf.co/{model}, that this worker reaches huggingface.co (or has the "
        f"model in its HF cache when HF_HUB_OFFLINE=1), or set PIPELINE_PYANNOTE_MODEL "
        f"to a local model directory. Cause: {reason}"
    )
