"""Reading the analysis audio span by span from disk (core.analysis.audio.Recording).

Why: the model stages no longer hold a recording in memory (six hours of 16 kHz float32
is 1.4 GB); they read each span they need from the scratch copy. A span read so must be
exactly the samples a whole-file load holds there, whatever the span (edges, past the
end, empty), from any number of threads at once; and what reads through it (the DNSMOS
windows of a speaker's speech, the audio events) must equal what reads the array.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from core.analysis import events as events_module
from core.analysis.audio import Recording, load_wav, transcode
from core.analysis.dnsmos import DNSMOS_WINDOW, _joined, dnsmos_windows, span_slice, window_ranges
from tests.conftest import EVAL

SPEECH = EVAL / "diarization" / "audio" / "falcon_test.wav"
RATE = 16_000


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    wav = transcode(SPEECH, tmp_path_factory.mktemp("recording") / "analysis.wav", RATE)
    return wav, load_wav(wav)[0]


def test_spans_read_from_disk_equal_the_whole_file_loaded(analysis):
    wav, whole = analysis
    n = len(whole)
    with Recording(wav) as recording:
        assert len(recording) == n and recording.rate == RATE
        assert recording.duration_s == pytest.approx(n / RATE)
        for span in [
            slice(0, 10),
            slice(12_345, 98_765),
            slice(n - 7, n + 500),
            slice(-100, None),
            slice(5, 5),
            slice(None),
        ]:
            got = recording[span]
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, whole[span])
        with pytest.raises(ValueError, match="contiguous"):
            recording[::2]


def test_threads_reading_at_once_each_get_their_own_span(analysis):
    wav, whole = analysis
    rng = np.random.default_rng(0)
    spans = [
        (int(a), int(a) + int(k))
        for a, k in zip(rng.integers(0, len(whole) - 40_000, 200), rng.integers(1, 40_000, 200))
    ]
    with Recording(wav) as recording, ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: recording[s[0] : s[1]], spans))
    for (a, b), samples in zip(spans, got):
        np.testing.assert_array_equal(samples, whole[a:b])


def test_a_stereo_file_reads_as_its_channel_mean(tmp_path, analysis):
    _, whole = analysis
    stereo = np.stack([whole[:RATE], -0.5 * whole[:RATE]], axis=1)
    sf.write(str(tmp_path / "stereo.wav"), stereo, RATE, subtype="FLOAT")
    with Recording(tmp_path / "stereo.wav") as recording:
        np.testing.assert_allclose(recording[100:900], stereo[100:900].mean(axis=1), atol=1e-7)


def test_dnsmos_windows_gathered_from_spans_equal_those_of_the_joined_speech(analysis):
    """DNSMOS scores a speaker's speech of a whole block on one window: gathering only that
    window from the spans must give the samples joining all of them would."""
    wav, whole = analysis
    spans = [(0.5, 3.0), (4.0, 4.2), (6.0, 12.5), (13.0, 13.01), (15.0, 19.0)]
    pieces = [span_slice(a, b, RATE, len(whole)) for a, b in spans]
    joined = np.concatenate([whole[p] for p in pieces])
    with Recording(wav) as recording:
        for windows in (1, 2):
            expected = dnsmos_windows(joined, windows)
            ranges = window_ranges(len(joined), windows)
            assert len(ranges) == len(expected)
            for (a, b), window in zip(ranges, expected):
                assert len(window) == DNSMOS_WINDOW
                np.testing.assert_array_equal(_joined(recording, pieces, a, b), window[: b - a])
        short = pieces[:2]  # under one window: all of it, repeated to fill one
        ((a, b),) = window_ranges(sum(p.stop - p.start for p in short))
        np.testing.assert_array_equal(
            _joined(recording, short, a, b), np.concatenate([whole[p] for p in short])
        )


def test_events_read_from_disk_equal_events_of_the_array(analysis, monkeypatch):
    wav, whole = analysis
    monkeypatch.setattr(events_module, "BLOCK_S", 7.0)  # several blocks and their edges
    expected = events_module.detect_events(whole, RATE)
    with Recording(wav) as recording:
        got = events_module.detect_events(recording, RATE)
    for name in ("music", "singing", "speech"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
