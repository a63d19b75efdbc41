"""Real yt-dlp and ffmpeg against a real local HTTP server: good media and bad."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from core.contracts.errors import (
    EmptyMedia,
    InvalidMedia,
    NetworkError,
    NotSingleVideo,
    RateLimited,
    SilentAudio,
    SourceTooSlow,
    TooLarge,
    TooLong,
    VideoPrivate,
    VideoUnavailable,
)
from core.sources.download import SourceLimits, fetch_audio
from devstack.media import ffmpeg
from devstack.media_server import REQUESTS


def fetch(url, tmp_path, max_duration_s=3600.0, **kw):
    kw.setdefault("limits", SourceLimits(max_duration_s=max_duration_s))
    return fetch_audio(url, tmp_path / "dl", silence_dbfs=-60.0, **kw)


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


# --- hostile sources: each bounded in time, bytes or disk (issue 13) ------------------
def test_an_endless_stream_is_cut_at_the_byte_limit(media_server, tmp_path):
    started = time.monotonic()
    with pytest.raises(TooLarge):
        fetch(
            f"{media_server.url}/endless/ep03-three-voices.ogg",
            tmp_path,
            limits=SourceLimits(max_duration_s=3600, max_bytes=8 << 20),
        )
    print(f"\nendless stream: TooLarge after {time.monotonic() - started:.1f} s")


def test_an_endless_stream_is_cut_at_the_time_limit(media_server, tmp_path):
    started = time.monotonic()
    with pytest.raises(SourceTooSlow, match="longer than"):
        fetch(
            f"{media_server.url}/endless/ep03-three-voices.ogg",
            tmp_path,
            limits=SourceLimits(max_duration_s=3600, max_bytes=1 << 40, timeout_s=3),
        )
    print(f"\nendless stream: SourceTooSlow after {time.monotonic() - started:.1f} s (limit 3 s)")


def test_a_slow_drip_is_cut_at_the_minimum_rate(media_server, tmp_path):
    started = time.monotonic()
    with pytest.raises(SourceTooSlow, match="kB/s"):
        fetch(
            f"{media_server.url}/drip/2000/ep03-three-voices.ogg",
            tmp_path,
            limits=SourceLimits(max_duration_s=3600, min_bytes_per_s=20_000, rate_window_s=2),
        )
    print(f"\nslow drip (2 kB/s): SourceTooSlow after {time.monotonic() - started:.1f} s (window 2 s)")


def test_a_source_that_sends_a_byte_now_and_then_is_cut_when_it_goes_quiet(media_server, tmp_path):
    """A byte every 2 s keeps one 1 KiB read blocked for half an hour and no socket
    timeout fires (issue 22: a slot held for hours). The transfer's watchdog shuts its
    socket down once nothing arrived for ``quiet_s``."""
    started = time.monotonic()
    with pytest.raises(SourceTooSlow, match="sent nothing for 3 s"):
        fetch(
            f"{media_server.url}/trickle/2/ep03-three-voices.ogg",
            tmp_path,
            limits=SourceLimits(max_duration_s=3600, quiet_s=3, rate_window_s=600),
        )
    took = time.monotonic() - started
    print(f"\ntrickle (1 byte / 2 s): SourceTooSlow after {took:.1f} s (quiet bound 3 s)")
    assert took < 3 + 10, took


def test_a_feed_of_fifty_episodes_is_refused_without_fetching_them(media_server, tmp_path):
    REQUESTS.clear()
    with pytest.raises(NotSingleVideo):
        fetch(f"{media_server.url}/feed/50.xml", tmp_path)
    fetched = [r for r in REQUESTS if r.startswith("/ep-")]
    assert len(fetched) <= 1, fetched
    assert not list((tmp_path / "dl").glob("*.wav"))


def silent_flac(path: Path, rate: int, hours: int) -> None:
    """Hours of digital silence as FLAC: tiny on disk, huge once decoded."""
    source = ("-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=mono")
    ffmpeg(*source, "-t", str(hours * 3600), "-c:a", "flac", str(path))


@pytest.fixture(scope="module")
def silence_bomb(media_dir) -> str:
    """Seven hours of silence as FLAC: a few hundred kB that would decode to GBs."""
    name = "seven-hours-of-silence.flac"
    silent_flac(media_dir / name, rate=8000, hours=7)
    return name


def test_a_decompression_bomb_is_refused_before_decoding(media_server, tmp_path, silence_bomb):
    """The container announces 7 h: TooLong (limit 6 h) before a byte is decoded."""
    source_kb = (media_server.directory / silence_bomb).stat().st_size >> 10
    with pytest.raises(TooLong, match="25200 s"):
        fetch(f"{media_server.url}/{silence_bomb}", tmp_path, max_duration_s=6 * 3600)
    written = sum(p.stat().st_size for p in (tmp_path / "dl").rglob("*") if p.is_file())
    print(f"\nsilence bomb: {source_kb} kB source, TooLong, {written >> 10} kB in scratch")
    assert not list((tmp_path / "dl").glob("*.wav")) and written < 64 << 20


@pytest.mark.parametrize(
    "info, error",
    [
        ({"live_status": "is_live"}, "LiveStream"),
        ({"live_status": "is_upcoming"}, "LiveStream"),
        ({"is_live": True}, "LiveStream"),
        ({"availability": "subscriber_only"}, "VideoPrivate"),
        ({"availability": "needs_auth"}, "VideoPrivate"),
        ({"duration": 36_001}, "TooLong"),
        ({"filesize_approx": 5 << 30}, "TooLarge"),
        ({"acodec": "none"}, "InvalidMedia"),
        ({"live_status": "was_live", "duration": 3000, "availability": "public", "acodec": "opus"}, None),
    ],
)
def test_the_probe_refuses_from_metadata_alone(info, error):
    """Fields as yt-dlp's YouTube extractor fills them (live_status, availability,
    duration, filesize_approx, acodec): each refusal is typed, a finished public
    recording passes."""
    from core.sources.download import check_probe

    limits = SourceLimits(max_duration_s=36_000, max_bytes=4 << 30)
    if error is None:
        check_probe(info, limits)
        return
    with pytest.raises(Exception) as raised:
        check_probe(info, limits)
    assert type(raised.value).__name__ == error and not raised.value.retryable


def test_cookies_and_a_proxy_are_used_and_never_shown(media_server, tmp_path, servers, capsys):
    """The operator's cookie file opens a page that refuses anyone without it; the
    download goes through the operator's proxy (credentials checked by it); neither
    the proxy's password nor the cookie appears in the result, the payload or the logs."""
    import dataclasses

    from temporalio.testing import ActivityEnvironment

    from activities.download import DownloadActivities
    from activities.runtime import Runtime
    from core.contracts.video import VideoSpec
    from devstack.media_server import COOKIE_VALUE
    from tests.http_proxy import AuthProxy

    cookies = tmp_path / "cookies.txt"
    cookies.write_text(
        f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{COOKIE_VALUE}\n"
    )
    cookies.chmod(0o400)  # mounted secrets are read-only: yt-dlp gets a copy
    url = f"{media_server.url}/needs-cookie/ep03-three-voices.ogg"
    with pytest.raises(VideoPrivate):
        fetch(url, tmp_path / "without")
    with AuthProxy("fleet", "proxy-pass-93b1") as proxy:
        proxies = tmp_path / "proxies.txt"
        proxies.write_text(f"# one per line\nhttp://fleet:proxy-pass-93b1@127.0.0.1:{proxy.port}\n")
        settings = servers.settings(
            s3_bucket="access",
            work_dir=tmp_path / "scratch",
            ytdlp_cookies_file=cookies,
            ytdlp_proxies_file=proxies,
        )
        rt = Runtime(settings)
        rt.store.ensure_bucket()
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, activity_id="1", workflow_run_id="run-access")
        ref = env.run(DownloadActivities(rt).download_audio, VideoSpec(video_id="cookied", url=url))
    assert ref.duration_s > 10 and any("needs-cookie" in path for path in proxy.carried)
    shown = capsys.readouterr()
    for secret in ("proxy-pass-93b1", COOKIE_VALUE):
        assert secret not in ref.model_dump_json() and secret not in shown.out + shown.err


def test_a_day_long_file_is_refused_with_little_memory(media_server, tmp_path):
    """24 hours of audio (silent FLAC, a few MB): TooLong, and neither the process that
    fetched it nor its ffmpeg ever held more than a small fraction of what decoding it
    would take (the fetcher's own peak: ``devstack.memory``)."""
    name = "one-day.flac"
    silent_flac(media_server.directory / name, rate=1000, hours=24)
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from core.sources.download import SourceLimits, fetch_audio\n"
        "from core.contracts.errors import TooLong\n"
        "from devstack.memory import own_peak_kib\n"
        "try:\n"
        f"    fetch_audio('{media_server.url}/{name}', Path('{tmp_path}') / 'dl', "
        "limits=SourceLimits(max_duration_s=21600), silence_dbfs=-60)\n"
        "except TooLong as exc:\n"
        "    ffmpeg = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "    print('TooLong', max(own_peak_kib(), ffmpeg), exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    kind, peak_kib, *_ = (result.stdout.strip() or result.stderr).split()
    print(f"\n24-hour file: {kind}, peak memory {int(peak_kib) >> 10} MiB")
    assert kind == "TooLong" and int(peak_kib) < 2 << 20, result.stdout + result.stderr
