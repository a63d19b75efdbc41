"""segmentation-3.0 and the CAM++ trunk in onnxruntime: the same outputs for less CPU.

On a machine without CUDA both models run in onnxruntime, from ONNX graphs exported
from the shipped weights (never from a hub) once per weights file and torch version
into a cache folder; a worker builds them before it polls (``prepare``). With CUDA,
or with the setting ``inference=torch``, they run in PyTorch: the reference the tests
hold this path to (segmentation decisions, CAM++ frames), and the GPU path.
onnxruntime is a well-kept runtime for these small convolutional and recurrent
graphs: it fuses what eager PyTorch runs op by op (``benchmarks.speed``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.analysis import threads

if TYPE_CHECKING:
    import onnxruntime
    import torch

RUNTIMES = ("onnxruntime", "torch")
OPSET = 17
DEFAULT_CACHE_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "podcast-pipeline" / "onnx"
)
_runtime = "onnxruntime"
_cache_dir = DEFAULT_CACHE_DIR
_sessions: dict[str, onnxruntime.InferenceSession] = {}
_lock = threading.Lock()


def use(runtime: str, cache_dir: Path | None = None) -> None:
    """Which runtime the models use from now on, and where exported graphs are kept."""
    global _runtime, _cache_dir
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown inference runtime {runtime!r} ({' | '.join(RUNTIMES)})")
    _runtime = runtime
    if cache_dir is not None:
        _cache_dir = cache_dir
    _sessions.clear()


def fast() -> bool:
    """Whether the models run in onnxruntime here (no CUDA, and not set to torch)."""
    import torch

    return _runtime == "onnxruntime" and not torch.cuda.is_available()


@dataclass(frozen=True)
class Graph:
    """A model to run in onnxruntime: one input and one output, named by ``axes`` (the
    input first, each with its variable axes), built in torch from ``weights``."""

    name: str
    weights: Path
    module: Callable[[], torch.nn.Module]
    example: Callable[[], torch.Tensor]  # an input of the right shape, for the export
    axes: dict[str, dict[int, str]]


def session(graph: Graph) -> onnxruntime.InferenceSession:
    """The graph's onnxruntime session, exported the first time any process here needs it."""
    with _lock:
        if graph.name not in _sessions:
            _sessions[graph.name] = _load(_exported(graph))
        return _sessions[graph.name]


def run(session: onnxruntime.InferenceSession, array: Any) -> Any:
    """The session's one output for its one input."""
    return session.run(None, {session.get_inputs()[0].name: array})[0]


def _exported(graph: Graph) -> Path:
    import torch

    digest = hashlib.sha256(graph.weights.read_bytes()).hexdigest()[:16]
    file_name = f"{graph.name}-{digest}-torch{torch.__version__.split('+')[0]}-opset{OPSET}.onnx"
    path = _cache_dir / file_name
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK):
            raise PermissionError(path.parent)
    except OSError:  # a read-only home: this process's scratch space still takes it
        path = Path(tempfile.gettempdir()) / "podcast-pipeline-onnx" / file_name
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    input_name, output_name = graph.axes
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            graph.module(),
            (graph.example(),),
            str(partial),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes=graph.axes,
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: these graphs need no torch.export tracing
        )
    os.replace(partial, path)  # whole or absent: processes exporting at once both succeed
    return path


def _load(path: Path) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads.count()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
