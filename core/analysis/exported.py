"""How segmentation-3.0 and the CAM++ trunk run without CUDA: the same outputs for less CPU.

On a machine without CUDA both models run in onnxruntime, from ONNX graphs exported
from the shipped weights (never from a hub) once per weights file and torch version
into a cache folder; a worker builds them before it polls (``prepare``). With CUDA,
or with the setting ``inference=torch``, they run in PyTorch: the reference the tests
hold this path to (segmentation decisions, CAM++ frames), and the GPU path.
onnxruntime is a well-kept runtime for these small convolutional and recurrent
graphs: it fuses what eager PyTorch runs op by op (``benchmarks.speed``).

With the setting ``cpu_bf16=auto``, on a CPU with bf16 units (AVX512-BF16 or AMX), the
CAM++ trunk runs in PyTorch under bf16 autocast instead, about a fifth cheaper than
onnxruntime in fp32. Nearly all its frames stay within BF16_FRAME_COSINE of the fp32 ones and
the embeddings pooled from them closer still (tests/test_backends.py), but the clustering's
speaker count is not that stable: on one long-form build it found 12 speakers instead
of 17 (benchmarks/README.md). So fp32 is the default. Segmentation stays in fp32 in any
case: under bf16 its decisions changed (dev DER +3 points). Without bf16 units bf16 is
emulated and slower, so ``auto`` keeps fp32 there (``on`` forces it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.analysis import threads

if TYPE_CHECKING:
    import onnxruntime
    import torch

RUNTIMES = ("onnxruntime", "torch")
BF16_CHOICES = ("auto", "on", "off")
# The cosine of a bf16 trunk frame to its fp32 one that all but BF16_FRAME_TAIL of the frames
# reach. A tail, not the least: the worst single frame depends on which bf16 kernels the CPU
# runs (0.992 and 0.989 on two machines of the same kind), and the embeddings are pooled.
BF16_FRAME_COSINE = 0.99
BF16_FRAME_TAIL = 0.001
OPSET = 17
DEFAULT_CACHE_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "podcast-pipeline" / "onnx"
)
_runtime = "onnxruntime"
_bf16 = "off"
_cache_dir = DEFAULT_CACHE_DIR
_sessions: dict[str, onnxruntime.InferenceSession] = {}
_lock = threading.Lock()


def use(runtime: str, cache_dir: Path | None = None, bf16: str = "off") -> None:
    """Which runtime the models use from now on, where exported graphs are kept, and
    whether the CAM++ trunk runs in bf16 (``auto``: where the CPU has bf16 units; ``on``:
    also where it would be emulated)."""
    global _runtime, _cache_dir, _bf16
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown inference runtime {runtime!r} ({' | '.join(RUNTIMES)})")
    if bf16 not in BF16_CHOICES:
        raise ValueError(f"unknown bf16 choice {bf16!r} ({' | '.join(BF16_CHOICES)})")
    _runtime, _bf16 = runtime, bf16
    if cache_dir is not None:
        _cache_dir = cache_dir
    _sessions.clear()


def fast() -> bool:
    """Whether the models run in onnxruntime here (no CUDA, and not set to torch)."""
    import torch

    return _runtime == "onnxruntime" and not torch.cuda.is_available()


def bf16() -> bool:
    """Whether the CAM++ trunk runs in torch under bf16 autocast here, not in onnxruntime."""
    return fast() and (_bf16 == "on" or (_bf16 == "auto" and cpu_has_bf16()))


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (elsewhere oneDNN emulates it, slower than fp32)."""
    import torch

    cpu = torch._C._cpu
    return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())


def trunk_precision() -> AbstractContextManager[object]:
    """The context the CAM++ trunk runs in when it runs in torch: bf16 autocast, or as is."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16() else nullcontext()


def providers() -> list[str]:
    """onnxruntime's execution providers for a model that runs wherever the worker's
    models do: CUDA first where torch has a GPU and this onnxruntime build carries the
    CUDA provider (the onnxruntime-gpu wheel), else the CPU."""
    import onnxruntime as ort
    import torch

    if torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def describe() -> str:
    """Where the models run, for the worker's start line."""
    if not fast():
        return "torch"
    return "onnxruntime, CAM++ trunk in torch bf16" if bf16() else "onnxruntime"


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
