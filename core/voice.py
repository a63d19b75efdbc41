"""Speaker embeddings from Resemblyzer's GE2E encoder (weights ship in its wheel).

One encoder per process. Audio is turned into one mel spectrogram (10 ms frames) and
windows are sliced from it, so diarization windows and segment embeddings cost one
batched forward pass each instead of one per window.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
import torch

from core import faults

MEL_HOP_S = 0.01  # resemblyzer: 10 ms per mel frame
WINDOW_FRAMES = 160  # 1.6 s, the encoder's training window

_lock = threading.Lock()


@lru_cache(maxsize=1)
def encoder():
    from resemblyzer import VoiceEncoder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return VoiceEncoder(device=device, verbose=False)


def mel_frames(samples: np.ndarray) -> np.ndarray:
    """(n_frames, 40) mel spectrogram of 16 kHz audio, as the encoder expects."""
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

    # The encoder was trained on audio at -30 dBFS; quiet recordings embed poorly.
    levelled = normalize_volume(samples.astype(np.float32), -30, increase_only=True)
    return wav_to_mel_spectrogram(levelled)


def embed_windows(mels: np.ndarray, starts: list[int], batch_size: int = 64) -> np.ndarray:
    """L2-normalised 256-d embedding of each WINDOW_FRAMES-long window starting at ``starts``."""
    enc = encoder()
    if not starts:
        return np.zeros((0, 256), dtype=np.float32)
    padded = mels
    need = max(starts) + WINDOW_FRAMES
    if need > len(mels):  # short audio: pad with the quietest frame value
        padded = np.pad(mels, ((0, need - len(mels)), (0, 0)), mode="edge")
    out = []
    for b in range(0, len(starts), batch_size):
        batch = np.stack([padded[s : s + WINDOW_FRAMES] for s in starts[b : b + batch_size]])
        faults.check_batch_memory(len(batch))
        with _lock, torch.inference_mode():
            tensor = torch.from_numpy(batch).to(enc.device)
            out.append(enc(tensor).cpu().numpy())
    emb = np.concatenate(out).astype(np.float32)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)


def window_starts(start_s: float, end_s: float, step_s: float, n_frames: int) -> list[int]:
    """Window start frames covering [start_s, end_s]; at least one window."""
    first = int(round(start_s / MEL_HOP_S))
    last = max(first, int(round(end_s / MEL_HOP_S)) - WINDOW_FRAMES)
    step = max(1, int(round(step_s / MEL_HOP_S)))
    starts = list(range(first, last + 1, step))
    return [min(s, max(0, n_frames - WINDOW_FRAMES)) for s in starts]
