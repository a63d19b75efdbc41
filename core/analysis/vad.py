"""Speech activity from silero-vad, whose weights ship inside its PyPI wheel.

The music detector uses it (where speech is, so music under it is not confused with
talking); it is loaded once per process. (Diarization finds speech with its own
segmentation model.)

silero's own ``audio_forward`` runs the whole network once per 32 ms step in a Python
loop. Only its LSTM is recurrent: the STFT and convolutional encoder see one step's
samples (plus 64 samples of context) at a time. So the encoder runs batched over every
step at once and the LSTM runs as one sequence pass; the output equals silero's to
float precision (~1e-6) at a tenth of the CPU.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it runs: a module that only names a stage stays light
    import torch

VAD_RATE = 16_000
VAD_CHUNK = 512  # samples per silero step at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous step silero prepends to each step
ENCODER_BATCH = 4096  # steps (~2 min) per encoder call: bounds memory on long audio


class _BatchedSilero:
    """silero-vad's 16 kHz network, split so that only the LSTM runs step by step."""

    def __init__(self, jit_model: torch.jit.ScriptModule) -> None:
        import torch

        net = jit_model._model
        self.stft, self.encoder, self.head = net.stft, net.encoder, net.decoder.decoder
        cell = net.decoder.rnn
        self.lstm = torch.nn.LSTM(cell.weight_ih.shape[1], cell.weight_hh.shape[1], batch_first=True)
        with torch.no_grad():
            self.lstm.get_parameter("weight_ih_l0").copy_(cell.weight_ih)
            self.lstm.get_parameter("weight_hh_l0").copy_(cell.weight_hh)
            self.lstm.get_parameter("bias_ih_l0").copy_(cell.bias_ih)
            self.lstm.get_parameter("bias_hh_l0").copy_(cell.bias_hh)
        self.lstm.eval()

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        """Speech probability per VAD_CHUNK step of ``audio`` (a multiple of VAD_CHUNK long)."""
        import torch
        import torch.nn.functional as F

        steps = F.pad(audio, (CONTEXT, 0)).unfold(0, CONTEXT + VAD_CHUNK, VAD_CHUNK)
        state = None
        out = []
        for b in range(0, len(steps), ENCODER_BATCH):
            features = self.encoder(self.stft(steps[b : b + ENCODER_BATCH])).squeeze(-1)
            hidden, state = self.lstm(features.unsqueeze(0), state)
            out.append(self.head(hidden[0].unsqueeze(-1)).squeeze(1).mean(dim=1))
        return torch.cat(out)


@lru_cache(maxsize=1)
def _model() -> _BatchedSilero:
    from silero_vad import load_silero_vad

    return _BatchedSilero(load_silero_vad())


def speech_probabilities(samples: np.ndarray) -> np.ndarray:
    """Per-32 ms speech probability for 16 kHz mono samples."""
    import torch

    if len(samples) == 0:
        return np.zeros(0, dtype=np.float32)
    model = _model()
    pad = (-len(samples)) % VAD_CHUNK
    audio = torch.from_numpy(np.pad(samples, (0, pad)).astype(np.float32))
    with torch.inference_mode():
        probs = model(audio)
    return probs.numpy().astype(np.float32)
