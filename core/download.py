"""Fetch one video's audio with yt-dlp and make the two WAV copies with ffmpeg.

yt-dlp fetches the best audio stream as is; ffmpeg then writes the 48 kHz original and
the 16 kHz mono analysis copy, so every container goes through one decoder. yt-dlp's
errors are mapped to the pipeline's typed errors: the source's answer decides whether
the failure is permanent (404, 403, not media) or worth a retry (429, 5xx, cut off).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, cast

import yt_dlp

from core import audio, sources
from core.errors import (
    AgeRestricted,
    EmptyMedia,
    InvalidMedia,
    LiveStream,
    NetworkError,
    NotSingleVideo,
    PipelineError,
    RateLimited,
    ScratchFull,
    SourceBlocked,
    SourceTooSlow,
    TooLarge,
    TooLong,
    UnsafeSource,
    VideoPrivate,
    VideoUnavailable,
)


@dataclass(frozen=True)
class DownloadedAudio:
    original: Path  # 48 kHz PCM WAV
    analysis: Path  # 16 kHz mono PCM WAV
    duration_s: float
    title: str | None


# Order matters: the first pattern that matches wins. Patterns are yt-dlp's (and
# YouTube's, as yt-dlp relays them) phrases, never bare words, and they see the message
# without its "[extractor] <video id>: " prefix and without URLs (_matchable): a 503 on
# a video whose id contains "geo" is a 503. tests/test_error_mapping.py holds the real
# messages, taken from the pinned yt-dlp's code.
_ERROR_PATTERNS: list[tuple[str, type[PipelineError]]] = [
    (re.escape(sources.REFUSED), UnsafeSource),  # core/sources.py, from inside yt-dlp's networking
    (
        r"live event will begin|Premieres? in \d|Premiere will begin|will begin shortly|"
        r"\bis_(?:live|upcoming)\b|is not currently live|Waiting for scheduled stream",
        LiveStream,
    ),
    # before the bot check: the age gate also says "Sign in to confirm"
    (
        r"confirm your age|age[- ]restricted|age_(?:verification|check)_required|"
        r"inappropriate for some users",
        AgeRestricted,
    ),
    (
        r"Private video|This video is private|members[- ]only|available to this channel's members|"
        r"Join this channel to get access",
        VideoPrivate,
    ),
    (
        r"not (?:made this video )?available in your country|not available from your location|"
        r"geo[- ]restrict",
        VideoPrivate,
    ),
    # YouTube's bot check and captcha, its consent redirect, a Cloudflare challenge (the
    # generic extractor's 403 with cf-mitigated: challenge): before the 403s below
    (
        r"confirm (?:that )?you(?:['\u2019]re| are) not a bot|protect our community|captcha|Sign in to "
        r"confirm|"
        r"anti-bot challenge|cookie consent",
        SourceBlocked,
    ),
    (r"HTTP Error 429|Too Many Requests|rate[- ]limited", RateLimited),
    (r"Did not get any data blocks|The downloaded file is empty", EmptyMedia),  # a 200 with no body
    (
        r"HTTP Error (?:404|410)|Video unavailable|has been removed|does not exist|is no longer available|"
        r"This video is not available",
        VideoUnavailable,
    ),
    # a 403 on the media itself, after the page answered: YouTube's pass with time
    (
        r"unable to download video data: HTTP Error 403|fragment \d+ not found|Got error: HTTP Error 403",
        NetworkError,
    ),
    (r"HTTP Error (?:401|403)|only available for registered users|Login details are needed", VideoPrivate),
    (
        r"HTTP Error 5\d\d|timed out|Connection (?:refused|reset|aborted)|reset by peer|RemoteDisconnected|"
        r"Remote end closed|content too short|IncompleteRead|bytes read, \d+ more expected|"
        r"Temporary failure in name resolution|giving up after",
        NetworkError,
    ),
    (
        r"Unsupported URL|No video formats found|no (?:video|audio) formats|Requested format is not "
        r"available|"
        r"DRM protected",
        InvalidMedia,
    ),
]


def classify_download_error(message: str) -> PipelineError:
    """The typed error for a yt-dlp message; its text is the message, shortened, with
    every URL in it redacted (it goes into logs, the Web UI and search attributes)."""
    text = _matchable(message)
    for pattern, error in _ERROR_PATTERNS:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return error(_shorten(message))
    return NetworkError(_shorten(message))  # unknown: retry, the policy caps attempts


@dataclass(frozen=True)
class SourceLimits:
    """What one download may cost, whatever the source does: the duration the pipeline
    takes, the bytes it fetches, the time it waits, the slowest transfer it sits through."""

    max_duration_s: float
    max_bytes: int = 4 << 30
    timeout_s: float = 3600.0
    min_bytes_per_s: float = 8_000.0  # averaged over rate_window_s: a slow drip is cut off
    rate_window_s: float = 60.0


@dataclass(frozen=True)
class SourceAccess:
    """How this attempt reaches the source: the operator's cookies (a Netscape cookie
    file) and one proxy of their list, both secrets read from files on the worker, and
    yt-dlp options passed through settings (extractor args, player client, sleeps)."""

    cookies_file: Path | None = None
    proxy: str | None = None  # may hold credentials: never logged, never in a payload
    ytdlp_options: dict[str, Any] = field(default_factory=dict)


# options the pipeline owns: bounds, paths, safety; settings may not override them
OWNED_OPTIONS = frozenset(
    {
        "format",
        "outtmpl",
        "paths",
        "noplaylist",
        "overwrites",
        "max_filesize",
        "progress_hooks",
        "cookiefile",
        "proxy",
        "quiet",
        "no_warnings",
        "noprogress",
        "cachedir",
        "retries",
        "socket_timeout",
    }
)


def pick_proxy(proxies: list[str], attempt_id: str) -> str | None:
    """One proxy per attempt, spread over the list: a retry goes out through another."""
    if not proxies:
        return None
    return proxies[int(hashlib.sha256(attempt_id.encode()).hexdigest(), 16) % len(proxies)]


LIVE_STATUSES = {"is_live", "is_upcoming", "post_live"}
RESTRICTED = {"needs_auth", "premium_only", "subscriber_only"}
SCRATCH_MARGIN = 1.2  # free disk wanted, as a multiple of the WAV copies' size


def fetch_audio(
    url: str,
    workdir: Path,
    *,
    max_duration_s: float,
    silence_dbfs: float,
    ffmpeg: str | None = None,
    progress: Callable[[dict[str, float | str]], None] | None = None,
    limits: SourceLimits | None = None,
    access: SourceAccess | None = None,
) -> DownloadedAudio:
    """Download ``url`` into ``workdir`` and return both WAV copies, checked for content.

    The source is probed first (its metadata, nothing downloaded): a playlist or feed,
    a live or upcoming stream, a restricted video or one too long by its metadata ends
    here, typed. The download is audio only where the source has it, and bounded in
    bytes, time and rate; the container's own duration is read before decoding, and
    ffmpeg never writes more than the duration limit. ``progress`` hears where the
    work is (bytes fetched, then seconds transcoded): the activity puts it in its
    heartbeat details, so a stuck step is visible as such."""
    limits = limits or SourceLimits(max_duration_s=max_duration_s)
    report = progress or (lambda _details: None)
    workdir.mkdir(parents=True, exist_ok=True)
    guard = _TransferGuard(limits, report)
    options = {
        "format": "bestaudio/best",
        "outtmpl": str(workdir / "source.%(ext)s"),
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "retries": 1,  # Temporal's retry policy does the real retrying
        "socket_timeout": 30,
        "overwrites": True,
        "cachedir": False,
        "max_filesize": limits.max_bytes,
        "progress_hooks": [guard.hook],
    }
    access = access or SourceAccess()
    refused = OWNED_OPTIONS & set(access.ytdlp_options)
    if refused:
        raise ValueError(
            f"yt-dlp options {sorted(refused)} are the pipeline's own: remove them from settings"
        )
    options.update(access.ytdlp_options)
    if access.cookies_file:  # a copy: yt-dlp writes the jar back, and the secret is read-only
        options["cookiefile"] = str(shutil.copyfile(access.cookies_file, workdir / "cookies.txt"))
    if access.proxy:
        options["proxy"] = access.proxy
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            listed = ydl.extract_info(url, download=False, process=False)  # lists entries, fetches none
            _refuse_collection(listed)
            info = ydl.process_ie_result(listed, download=False)
            _refuse_collection(info)
            check_probe(info, limits)
            ydl.process_ie_result(info, download=True)
    except PipelineError:
        raise
    except yt_dlp.utils.YoutubeDLError as exc:
        raise classify_download_error(str(exc)) from None

    sources = [p for p in workdir.glob("source.*") if p.suffix not in {".part", ".ytdl"}]
    if not sources:
        if guard.bytes > limits.max_bytes or (info.get("filesize") or 0) > limits.max_bytes:
            raise TooLarge(f"the source is larger than {limits.max_bytes >> 20} MiB")
        raise NetworkError("yt-dlp reported success but wrote no file")
    source = sources[0]
    if source.stat().st_size == 0:
        raise EmptyMedia("the source file is empty (0 bytes)")

    container_s = audio.media_duration(source, ffmpeg)
    if container_s is not None and container_s > max_duration_s:
        raise TooLong(f"{container_s:.0f} s is longer than the {max_duration_s:.0f} s limit")
    _check_scratch(workdir, container_s or max_duration_s)
    copies = {}
    for name, rate in (("analysis_16k", audio.ANALYSIS_RATE), ("original", audio.ORIGINAL_RATE)):

        def on_progress(t: float, step: str = f"transcode {name}") -> None:
            report({"step": step, "audio_s": round(t, 1)})

        copies[name] = audio.transcode(
            source,
            workdir / f"{name}.wav",
            rate,
            1,
            ffmpeg,
            on_progress=on_progress,
            max_duration_s=max_duration_s + 1,
        )
        if name == "analysis_16k":  # checked before the larger copy is made
            duration, level = audio.scan_wav(copies[name])
            if duration > max_duration_s:
                raise TooLong(f"more than the {max_duration_s:.0f} s limit of audio")
            audio.check_audible(duration, level, silence_dbfs)
    source.unlink(missing_ok=True)
    return DownloadedAudio(copies["original"], copies["analysis_16k"], duration, info.get("title"))


def _refuse_collection(info: dict[str, Any] | None) -> None:
    """One row is one episode: a playlist, channel or feed would commit an arbitrary entry."""
    kind = (info or {}).get("_type")
    if kind in {"playlist", "multi_video"}:
        raise NotSingleVideo(
            f"the URL is a {kind} ({(info or {}).get('title') or 'untitled'}), not one episode"
        )


def check_probe(info: dict[str, Any], limits: SourceLimits) -> None:
    """Refuse, from the source's metadata alone, what would fail or mislead later."""
    if info.get("is_live") or info.get("live_status") in LIVE_STATUSES:
        raise LiveStream(
            f"the source is {info.get('live_status') or 'live'}: only finished recordings are taken"
        )
    if info.get("availability") in RESTRICTED:
        raise VideoPrivate(f"the source is {info['availability']}")
    duration = info.get("duration")
    if duration and duration > limits.max_duration_s:
        raise TooLong(f"{duration:.0f} s is longer than the {limits.max_duration_s:.0f} s limit")
    size = info.get("filesize") or info.get("filesize_approx")
    if size and size > limits.max_bytes:
        raise TooLarge(f"{size >> 20} MiB is more than the {limits.max_bytes >> 20} MiB limit")
    if info.get("acodec") == "none" and not info.get("requested_formats"):
        raise InvalidMedia("the source has no audio")


class _TransferGuard:
    """Ends a transfer that runs too long, too slowly or too large (yt-dlp's own checks
    need a size the source announces; an endless stream announces none)."""

    def __init__(self, limits: SourceLimits, report: Callable[[dict[str, float | str]], None]):
        self.limits = limits
        self.report = report
        self.started = time.monotonic()
        self.bytes = 0
        self.marks: list[tuple[float, int]] = []

    def hook(self, status: dict[str, Any]) -> None:
        now = time.monotonic()
        self.bytes = int(status.get("downloaded_bytes") or 0)
        self.report({"step": "fetch", "bytes": float(self.bytes)})
        if self.bytes > self.limits.max_bytes:
            raise TooLarge(f"more than {self.limits.max_bytes >> 20} MiB fetched")
        if now - self.started > self.limits.timeout_s:
            raise SourceTooSlow(f"the download took longer than {self.limits.timeout_s:.0f} s")
        window = self.limits.rate_window_s
        self.marks = [(t, b) for t, b in self.marks if now - t <= window] + [(now, self.bytes)]
        first_t, first_b = self.marks[0]
        rate = (self.bytes - first_b) / max(now - first_t, 1e-3)
        if now - self.started >= window and rate < self.limits.min_bytes_per_s:
            raise SourceTooSlow(f"under {self.limits.min_bytes_per_s / 1000:.0f} kB/s for {window:.0f} s")


def _check_scratch(workdir: Path, duration_s: float) -> None:
    """Both WAV copies must fit on the scratch disk, or this worker is the wrong place."""
    needed = duration_s * (audio.ORIGINAL_RATE + audio.ANALYSIS_RATE) * 2 * SCRATCH_MARGIN
    free = shutil.disk_usage(workdir).free
    if free < needed:
        raise ScratchFull(f"{free >> 20} MiB free on the scratch disk, {int(needed) >> 20} MiB needed")


def _shorten(message: str) -> str:
    message = re.sub(r"\x1b\[[0-9;]*m", "", message).replace("ERROR: ", "")
    return sources.redact_urls(message).strip()[:300]


def _matchable(message: str) -> str:
    """What the patterns see: no colour codes, no "ERROR: [extractor] <video id>: "
    prefix and no URLs, the parts of a message the source or the CSV chose."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", message).strip()
    text = re.sub(r"^ERROR: ", "", text)
    text = re.sub(r"^\[(?!download\])[^\]\s]+\] .*?: ", "", text)
    return sources._URL.sub("<url>", text)


# --- the network guard ---------------------------------------------------------------
# yt-dlp opens every connection of a download (the page, each redirect, the media, each
# fragment) through its request handlers. install_network_guard() makes the only
# handler that reaches the network one that checks before connecting:
# - each request's URL and each redirect target by what it says (core/sources.check_url):
#   a redirect to a refused host ends there, before any connection to it;
# - each new connection by what its host resolves to: it connects to exactly the
#   addresses it checked (no second DNS answer reaches a socket);
# - downloaders that hand the URL to another program (ffmpeg, rtmpdump, aria2c...) are
#   refused, since those would connect unchecked.
# A refusal is a RequestError (yt-dlp re-raises those instead of trying another
# handler) whose message carries sources.REFUSED: it ends as UnsafeSource. And
# yt-dlp's own error lines (written to stderr even when quiet) have their URLs redacted.


class _Refused(yt_dlp.networking.exceptions.RequestError):  # type: ignore[misc]  # yt-dlp is untyped
    """A source refused inside yt-dlp's networking (message: UnsafeSource's)."""


def _checked(url: str, resolve: bool) -> None:
    try:
        sources.check_url(url, sources.current_policy(), resolve=resolve)
    except UnsafeSource as exc:
        raise _Refused(str(exc)) from None


def install_network_guard() -> None:
    """Idempotent; run on import of this module, so every download in the process is guarded."""
    import socket
    from urllib.parse import urljoin

    import requests
    import urllib3
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.util.connection import create_connection
    from yt_dlp.downloader.external import ExternalFD
    from yt_dlp.downloader.rtmp import RtmpFD
    from yt_dlp.networking._requests import RequestsRH
    from yt_dlp.networking._urllib import UrllibRH
    from yt_dlp.networking.common import _REQUEST_HANDLERS

    if getattr(_REQUEST_HANDLERS.get("Requests"), "_pipeline_guard", False):
        return

    class CheckedConnection(urllib3.connection.HTTPConnection):
        """Connects only to the addresses of its host that the policy allows (listed first,
        before urllib3's HTTP or HTTPS class, in the two classes below)."""

        def _new_conn(self) -> socket.socket:
            if self.proxy is not None:  # the operator's proxy; the URL was checked by name
                return super()._new_conn()
            try:
                addresses = sources.resolve_checked(self._dns_host, self.port, sources.current_policy())
            except UnsafeSource as exc:
                raise _Refused(str(exc)) from None
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc
            error: OSError | None = None
            for address in addresses:
                try:
                    return create_connection(
                        (address, self.port),
                        self.timeout,
                        source_address=self.source_address,
                        socket_options=self.socket_options,
                    )
                except TimeoutError as exc:
                    raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
                except OSError as exc:
                    error = exc
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}")

    class CheckedHTTPConnection(CheckedConnection, urllib3.connection.HTTPConnection):
        pass

    class CheckedHTTPSConnection(CheckedConnection, urllib3.connection.HTTPSConnection):
        pass

    class CheckedHTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = CheckedHTTPConnection

    class CheckedHTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = CheckedHTTPSConnection

    def check_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """A requests response hook: it runs on every answer, before a redirect is followed."""
        if response.is_redirect:
            target = urljoin(response.url, response.headers["location"])  # requests.compat's urljoin
            _checked(target, resolve=True)
        return response

    class CheckedRequestsRH(RequestsRH):  # type: ignore[misc]  # yt-dlp is untyped
        RH_KEY = "Requests"
        _pipeline_guard = True

        def _create_instance(self, *args: Any, **kwargs: Any) -> requests.Session:
            session: requests.Session = super()._create_instance(*args, **kwargs)
            pools = {"http": CheckedHTTPPool, "https": CheckedHTTPSPool}
            for adapter in session.adapters.values():
                # yt-dlp mounts its own HTTPAdapter subclass
                cast(requests.adapters.HTTPAdapter, adapter).poolmanager.pool_classes_by_scheme = pools
            session.hooks["response"].append(check_redirect)
            return session

        def _send(self, request: Any) -> Any:  # yt-dlp's Request and Response
            _checked(request.url, resolve=bool(self._get_proxies(request)))
            return super()._send(request)

    class DataOnlyUrllibRH(UrllibRH):  # type: ignore[misc]  # yt-dlp is untyped
        """yt-dlp's urllib handler for data: URLs only: it has no connection hook, so it
        must never reach the network (nor file: URLs)."""

        RH_KEY = "Urllib"
        _SUPPORTED_URL_SCHEMES = ("data",)

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**{**kwargs, "enable_file_urls": False})
            self._SUPPORTED_URL_SCHEMES = ("data",)

    def refuse_external(self: object, filename: str, info_dict: dict[str, Any]) -> NoReturn:
        protocol = info_dict.get("protocol") or "stream"
        raise _Refused(
            f"{sources.REFUSED}: its {protocol} format would be fetched by {type(self).__name__}, "
            "outside the pipeline's address checks"
        )

    _REQUEST_HANDLERS.clear()  # a handler without these checks must not be chosen
    _REQUEST_HANDLERS.update({"Requests": CheckedRequestsRH, "Urllib": DataOnlyUrllibRH})
    ExternalFD.real_download = refuse_external
    RtmpFD.real_download = refuse_external
    to_stderr = yt_dlp.YoutubeDL.to_stderr

    def redacted_to_stderr(ydl: yt_dlp.YoutubeDL, message: str, *args: Any, **kwargs: Any) -> Any:
        return to_stderr(ydl, sources.redact_urls(message), *args, **kwargs)

    yt_dlp.YoutubeDL.to_stderr = redacted_to_stderr


install_network_guard()
