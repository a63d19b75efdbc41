"""Real yt-dlp and ffmpeg against a real local HTTP server: good media and bad."""

import pytest
import soundfile as sf

from core.download import fetch_audio
from core.errors import (
    EmptyMedia,
    InvalidMedia,
    NetworkError,
    RateLimited,
    SilentAudio,
    TooLong,
    VideoPrivate,
    VideoUnavailable,
)


def fetch(url, tmp_path, **kw):
    options = {"max_duration_s": 3600.0, "silence_dbfs": -60.0, **kw}
    return fetch_audio(url, tmp_path / "dl", **options)


def test_downloads_and_makes_both_copies(media_server, tmp_path):
    got = fetch(f"{media_server.url}/ep03-three-voices.ogg", tmp_path)
    original = sf.info(str(got.original))
    analysis = sf.info(str(got.analysis))
    assert original.samplerate == 48_000 and analysis.samplerate == 16_000
    assert analysis.channels == 1 and original.subtype == "PCM_16"
    assert got.duration_s == pytest.approx(18.58, abs=0.1)
    assert original.duration == pytest.approx(got.duration_s, abs=0.05)
    assert not list((tmp_path / "dl").glob("source.*")), "the raw download is removed"


@pytest.mark.parametrize(
    "path, error",
    [
        ("/status/404/gone.ogg", VideoUnavailable),
        ("/missing-file.ogg", VideoUnavailable),
        ("/status/403/private.ogg", VideoPrivate),
        ("/status/429/busy.ogg", RateLimited),
        ("/status/503/down.ogg", NetworkError),
        ("/truncated/ep03-three-voices.ogg", NetworkError),
        ("/not-media.mp3", InvalidMedia),
        ("/empty.wav", EmptyMedia),
        ("/silent.wav", SilentAudio),
    ],
)
def test_bad_sources_become_typed_errors(media_server, tmp_path, path, error):
    with pytest.raises(error):
        fetch(media_server.url + path, tmp_path)
    assert error.retryable == (error in (RateLimited, NetworkError))


def test_too_long_is_refused(media_server, tmp_path):
    with pytest.raises(TooLong):
        fetch(f"{media_server.url}/ep03-three-voices.ogg", tmp_path, max_duration_s=10.0)
