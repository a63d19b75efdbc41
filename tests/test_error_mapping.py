"""yt-dlp's real error messages -> the pipeline's typed errors (issue 13, item 4).

The messages are made by the pinned yt-dlp (2026.10.26, `pip show yt-dlp`) itself: its
InfoExtractor raise helpers (``raise_no_formats``, ``raise_geo_restricted``,
``raise_login_required``), the YouTube extractor's own composition (the sign-in branch
of ``extractor/youtube/_video.py`` that appends ``_youtube_login_hint``, its captcha and
rate-limit sentences), the networking errors (``HTTPError``, ``IncompleteRead``,
``TransportError``), the generic extractor's ``UnsupportedError`` and
``YoutubeDL.report_error``'s formatting ("ERROR: [extractor] <video id>: ..."). Every
phrase yt-dlp's code writes or matches on is checked to be in the pinned source
(``in_ytdlp``), so an upgrade that changes one fails here. The reasons YouTube itself
sends (bot check, age gate, live event, premiere, members-only) are not in yt-dlp's
code: they are quoted as YouTube words them and pass through yt-dlp's composition.
Nothing here touches the network (the stand-in extractor never requests anything).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import yt_dlp
from yt_dlp.extractor.youtube._base import YoutubeBaseInfoExtractor
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import HTTPError, IncompleteRead, TransportError
from yt_dlp.utils import DownloadError, ExtractorError, UnsupportedError, remove_end

from activities.errors import to_application_error
from core.contracts.errors import (
    AgeRestricted,
    EmptyMedia,
    InvalidMedia,
    LiveStream,
    NetworkError,
    PipelineError,
    RateLimited,
    SourceBlocked,
    UnsafeSource,
    VideoPrivate,
    VideoUnavailable,
)
from core.sources import safety
from core.sources.download import SourceLimits, fetch_audio
from core.sources.errors import classify_message
from devstack.media_server import MediaServer
from tests.conftest import SAMPLES

YTDLP = Path(yt_dlp.__file__).parent
GEO_ID = "geoPoli7ics"  # a YouTube-shaped id with "geo" in it


def in_ytdlp(relative: str, phrase: str) -> str:
    """``phrase``, after checking the pinned yt-dlp's ``relative`` source file has it."""
    assert phrase in (YTDLP / relative).read_text(), f"{phrase!r} is not in yt_dlp/{relative}"
    return phrase


class _Quiet:
    def debug(self, msg):
        pass

    warning = info = error = debug


class StandInIE(YoutubeBaseInfoExtractor):
    """YouTube's extractor as far as its errors go (same name, same login hint, same
    raise helpers), with no network: each URL names the error to raise."""

    IE_NAME = "youtube"
    _VALID_URL = r"pipeline-test:(?P<id>[^/]+)/(?P<case>\w+)"

    def _real_initialize(self):
        pass  # YouTube's sets consent and preference cookies; nothing to do here

    def _real_extract(self, url):
        video_id, case = self._match_valid_url(url).group("id", "case")
        RAISE[case](self, video_id)


def _sign_in(ie, reason: str) -> str:
    """extractor/youtube/_video.py: ``if 'sign in' in reason.lower():`` (exactly)."""
    tail = in_ytdlp("extractor/youtube/_video.py", "This helps protect our community. Learn more")
    reason = remove_end(reason, tail)
    return f"{remove_end(reason.strip(), '.')}. {ie._youtube_login_hint}"


def _http_error(status: int, reason: str) -> HTTPError:
    in_ytdlp("networking/exceptions.py", "msg = f'HTTP Error {response.status}: {response.reason}'")
    return HTTPError(
        Response(io.BytesIO(b""), "https://www.youtube.com/youtubei/v1/player", {}, status, reason)
    )


def _page_error(errnote: str, error: Exception):
    """extractor/common.py _request_webpage: ``errmsg = f'{errnote}: {error_to_str(err)}'``,
    raised while handling the network error (which makes it an "expected" one)."""
    try:
        raise error
    except type(error):
        raise ExtractorError(f"{errnote}: {error}", cause=error) from None


def _refused(url: str):
    """What the network guard raises inside yt-dlp (core/sources/network_guard.py) for a refused URL."""
    from core.sources.network_guard import _Refused

    try:
        safety.check_url(url, safety.SourcePolicy())
    except UnsafeSource as exc:
        raise _Refused(str(exc)) from None


RAISE = {
    "bot": lambda ie, vid: ie.raise_no_formats(
        _sign_in(ie, "Sign in to confirm you’re not a bot. This helps protect our community. Learn more"),
        expected=True,
    ),
    "age": lambda ie, vid: ie.raise_no_formats(
        _sign_in(ie, "Sign in to confirm your age. This video may be inappropriate for some users."),
        expected=True,
    ),
    "private": lambda ie, vid: ie.raise_no_formats(
        _sign_in(ie, "Private video. Sign in if you've been granted access to this video"), expected=True
    ),
    "members": lambda ie, vid: ie.raise_no_formats(
        "Join this channel to get access to members-only content like this video, and other exclusive perks.",
        expected=True,
    ),
    "members_level": lambda ie, vid: ie.raise_no_formats(
        "This video is available to this channel's members on level: Sponsor (or any higher level). "
        "Join this channel to get access to members-only content and other exclusive perks.",
        expected=True,
    ),
    "geo_youtube": lambda ie, vid: ie.raise_geo_restricted(
        in_ytdlp(
            "extractor/youtube/_video.py", "The uploader has not made this video available in your country"
        ),
        ["US"],
        metadata_available=True,
    ),
    "geo_default": lambda ie, vid: ie.raise_geo_restricted(),
    "login": lambda ie, vid: ie.raise_login_required(),
    "live": lambda ie, vid: ie.raise_no_formats("This live event will begin in 3 hours.", expected=True),
    "live_soon": lambda ie, vid: ie.raise_no_formats(
        "This live event will begin in a few moments.", expected=True
    ),
    "premiere": lambda ie, vid: ie.raise_no_formats("Premieres in 2 hours", expected=True),
    "captcha": lambda ie, vid: ie.raise_no_formats(
        "Playback paused"
        + in_ytdlp(
            "extractor/youtube/_video.py", ". YouTube is requiring a captcha challenge before playback"
        ),
        expected=True,
    ),
    "consent": lambda ie, vid: (_ for _ in ()).throw(
        ExtractorError(
            in_ytdlp("extractor/youtube/_redirect.py", "Invalid cookie consent redirect URL"), expected=True
        )
    ),
    "session_limited": lambda ie, vid: ie.raise_no_formats(
        "This content isn't available, try again later. The current session "
        + in_ytdlp("extractor/youtube/_video.py", "has been rate-limited by YouTube for up to an hour"),
        expected=True,
    ),
    "removed": lambda ie, vid: ie.raise_no_formats(
        "Video unavailable. This video has been removed by the uploader", expected=True
    ),
    "unavailable": lambda ie, vid: ie.raise_no_formats(
        in_ytdlp("extractor/youtube/_video.py", "Video unavailable"), expected=True
    ),
    "api_503": lambda ie, vid: _page_error(
        in_ytdlp("extractor/youtube/_base.py", "Unable to download API page"),
        _http_error(503, "Service Unavailable"),
    ),
    "api_500": lambda ie, vid: _page_error(
        "Unable to download API page", _http_error(500, "Internal Server Error")
    ),
    "api_429": lambda ie, vid: _page_error(
        "Unable to download API page", _http_error(429, "Too Many Requests")
    ),
    "page_403": lambda ie, vid: _page_error(
        in_ytdlp("extractor/common.py", "Unable to download webpage"), _http_error(403, "Forbidden")
    ),
    "page_401": lambda ie, vid: _page_error("Unable to download webpage", _http_error(401, "Unauthorized")),
    "page_404": lambda ie, vid: _page_error("Unable to download webpage", _http_error(404, "Not Found")),
    "page_410": lambda ie, vid: _page_error("Unable to download webpage", _http_error(410, "Gone")),
    "reset": lambda ie, vid: _page_error(
        "Unable to download webpage",
        TransportError(
            "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))"
        ),
    ),
    "refused": lambda ie, vid: _page_error(
        "Unable to download webpage",
        TransportError(
            "HTTPSConnectionPool(host='www.youtube.com', port=443): Max retries exceeded with url: "
            "/watch?v=x "
            "(Caused by NewConnectionError('Failed to establish a new connection: [Errno 111] Connection "
            "refused'))"
        ),
    ),
    "drm": lambda ie, vid: ie.raise_no_formats(
        in_ytdlp("YoutubeDL.py", "This video is DRM protected"), expected=True
    ),
    "no_formats": lambda ie, vid: ie.raise_no_formats(in_ytdlp("YoutubeDL.py", "No video formats found!")),
    "unsupported": lambda ie, vid: (_ for _ in ()).throw(
        UnsupportedError("https://feeds.example.com/show/episode?token=s3cr3t")
    ),
    "unsafe": lambda ie, vid: _refused("http://0xA9FEA9FE/latest/meta-data/"),
}


def extractor_message(case: str, video_id: str = GEO_ID) -> str:
    """What fetch_audio gets from ``extract_info`` when the extractor raises ``case``."""
    with yt_dlp.YoutubeDL({"logger": _Quiet(), "quiet": True}) as ydl:
        ydl.add_info_extractor(StandInIE(ydl))
        with pytest.raises(yt_dlp.utils.YoutubeDLError) as raised:
            ydl.extract_info(f"pipeline-test:{video_id}/{case}", ie_key="StandIn", download=False)
    return str(raised.value)


def download_message(text: str) -> str:
    """What a download step reports through YoutubeDL.report_error."""
    with yt_dlp.YoutubeDL({"logger": _Quiet(), "quiet": True}) as ydl, pytest.raises(DownloadError) as raised:
        ydl.report_error(text)
    return str(raised.value)


EXTRACTOR_CASES = [
    ("bot", SourceBlocked),
    ("captcha", SourceBlocked),
    ("consent", SourceBlocked),
    ("age", AgeRestricted),
    ("private", VideoPrivate),
    ("members", VideoPrivate),
    ("members_level", VideoPrivate),
    ("geo_youtube", VideoPrivate),
    ("geo_default", VideoPrivate),
    ("login", VideoPrivate),
    ("live", LiveStream),
    ("live_soon", LiveStream),
    ("premiere", LiveStream),
    ("session_limited", RateLimited),
    ("removed", VideoUnavailable),
    ("unavailable", VideoUnavailable),
    ("api_503", NetworkError),  # the id contains "geo": still a 503, retried
    ("api_500", NetworkError),
    ("api_429", RateLimited),
    ("page_403", VideoPrivate),
    ("page_401", VideoPrivate),
    ("page_404", VideoUnavailable),
    ("page_410", VideoUnavailable),
    ("reset", NetworkError),
    ("refused", NetworkError),
    ("drm", InvalidMedia),
    ("no_formats", InvalidMedia),
    ("unsupported", InvalidMedia),
    ("unsafe", UnsafeSource),
]

DOWNLOAD_CASES = [  # (what the download step says, type): formats from YoutubeDL.py and downloader/
    (f"{in_ytdlp('YoutubeDL.py', 'unable to download video data: ')}HTTP Error 403: Forbidden", NetworkError),
    (
        "\r" + in_ytdlp("downloader/common.py", "[download] Got error: ") + "HTTP Error 403: Forbidden",
        NetworkError,
    ),
    ("fragment 3 not found, unable to continue", NetworkError),
    (f"unable to download video data: {IncompleteRead(partial=4096, expected=90000)}", NetworkError),
    ("content too short (expected 90000 bytes and served 4096)", NetworkError),
    (in_ytdlp("downloader/http.py", "Did not get any data blocks"), EmptyMedia),
    (
        in_ytdlp(
            "YoutubeDL.py",
            "Requested format is not available. Use --list-formats for a list of available formats",
        ),
        InvalidMedia,
    ),
    ("unable to download video data: HTTP Error 429: Too Many Requests", RateLimited),
    ("unable to download video data: HTTP Error 502: Bad Gateway", NetworkError),
    ("something yt-dlp has never said", NetworkError),  # unknown: retried, the policy caps attempts
]


@pytest.mark.parametrize(("case", "expected"), EXTRACTOR_CASES, ids=[c for c, _ in EXTRACTOR_CASES])
def test_extractor_messages_map_to_their_type_and_retryability(case, expected):
    message = extractor_message(case)
    error = classify_message(message)
    assert type(error) is expected, message
    assert error.retryable is expected.retryable
    assert "s3cr3t" not in str(error), "URLs in messages are redacted"
    application = to_application_error(error, rate_limit_backoff_s=120)
    assert application.type == expected.__name__ and application.non_retryable is not expected.retryable
    if expected in (SourceBlocked, RateLimited):  # a cool-down, not the policy's quick retry
        assert (
            application.next_retry_delay is not None and application.next_retry_delay.total_seconds() == 120
        )


@pytest.mark.parametrize(("text", "expected"), DOWNLOAD_CASES, ids=[t[:40] for t, _ in DOWNLOAD_CASES])
def test_download_messages_map_to_their_type_and_retryability(text, expected):
    error = classify_message(download_message(text))
    assert type(error) is expected and error.retryable is expected.retryable


def test_the_video_id_and_urls_never_decide_the_type():
    """The id (and the generic extractor's id is the file name) and the URL are the
    CSV's words, not the source's: "Private video", "geo" or "404" in them changes nothing."""
    for video_id in (GEO_ID, "Private video", "HTTP Error 404", "members-only-ep1"):
        assert type(classify_message(extractor_message("api_503", video_id))) is NetworkError
    url_503 = (
        "ERROR: [generic] x: Unable to download webpage: "
        "https://geo.example/Private%20video/404 HTTP Error 503"
    )
    assert type(classify_message(url_503)) is NetworkError


def test_every_type_the_mapping_names_is_a_pipeline_error():
    from core.sources.errors import _ERROR_PATTERNS

    assert all(issubclass(error, PipelineError) for _, error in _ERROR_PATTERNS)
    assert {SourceBlocked, AgeRestricted, UnsafeSource, LiveStream} <= {error for _, error in _ERROR_PATTERNS}


# --- the same, through real yt-dlp against the local media server -------------------------
@pytest.fixture(scope="module")
def geo_media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media-errors")
    shutil.copy(SAMPLES / "ep03-three-voices.ogg", folder / "geo-politics-weekly.ogg")
    with MediaServer(folder) as server:
        yield server


def test_503_on_an_id_containing_geo_is_retried(geo_media, tmp_path):
    """The generic extractor's id is the file name, "geo-politics-weekly": its 503 is a
    NetworkError (retryable), and the retry downloads the episode."""
    url = f"{geo_media.url}/flaky/503/1/geo-politics-weekly.ogg"
    with pytest.raises(NetworkError, match="geo-politics-weekly.*HTTP Error 503") as first:
        fetch_audio(url, tmp_path / "a", limits=SourceLimits(max_duration_s=3600.0), silence_dbfs=-60.0)
    assert first.value.retryable
    got = fetch_audio(url, tmp_path / "b", limits=SourceLimits(max_duration_s=3600.0), silence_dbfs=-60.0)
    assert got.duration_s > 10


def test_403_on_the_media_after_the_page_answered_is_retryable(geo_media, tmp_path):
    """The page (the extractor's request) answers, the media download gets a 403, as
    YouTube's media servers do for a while: retried, not a permanent VideoPrivate."""
    url = f"{geo_media.url}/then/403/1/geo-politics-weekly.ogg"
    with pytest.raises(NetworkError, match="unable to download video data: HTTP Error 403") as failed:
        fetch_audio(url, tmp_path / "dl", limits=SourceLimits(max_duration_s=3600.0), silence_dbfs=-60.0)
    assert failed.value.retryable
    with pytest.raises(VideoPrivate):  # the page itself refused: permanent
        fetch_audio(
            f"{geo_media.url}/status/403/geo-politics-weekly.ogg",
            tmp_path / "p",
            limits=SourceLimits(max_duration_s=3600.0),
            silence_dbfs=-60.0,
        )


def test_a_cloudflare_challenge_is_a_bot_check_not_a_private_video(geo_media, tmp_path):
    """A site behind Cloudflare answers a client it suspects with a 403 challenge page;
    the pinned yt-dlp's generic extractor recognises it (cf-mitigated: challenge). That
    is fleet weather, retried after a cool-down, not the permanent 403 of a private video."""
    url = f"{geo_media.url}/status/challenge/geo-politics-weekly.ogg"
    with pytest.raises(
        SourceBlocked, match=in_ytdlp("extractor/generic.py", "caused by Cloudflare anti-bot challenge")
    ):
        fetch_audio(url, tmp_path / "dl", limits=SourceLimits(max_duration_s=3600.0), silence_dbfs=-60.0)


def test_the_status_decides_not_the_reason_phrase_the_server_sends(geo_media, tmp_path):
    """A server chooses its reason phrase: a 404 that says "Too Many Requests" is a missing
    video (permanent), a 429 that says "Not Found" a rate limit (a cool-down), a 503 that
    says "Private video" a retry. The status yt-dlp got decides; the phrase is never read."""
    limits = SourceLimits(max_duration_s=3600.0)
    for path, expected in (
        ("404:Too%20Many%20Requests", VideoUnavailable),
        ("429:Not%20Found", RateLimited),
        ("503:Private%20video", NetworkError),
        ("403:Video%20unavailable", VideoPrivate),
    ):
        with pytest.raises(expected) as failed:
            fetch_audio(
                f"{geo_media.url}/status/{path}/geo-politics-weekly.ogg",
                tmp_path / path[:3],
                limits=limits,
                silence_dbfs=-60.0,
            )
        assert type(failed.value) is expected, str(failed.value)
        # and the message alone, as it reads, says the same
        assert type(classify_message(str(failed.value))) is expected, str(failed.value)
