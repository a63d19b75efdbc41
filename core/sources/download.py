"""Fetch one video's audio with yt-dlp and make the two WAV copies with ffmpeg.

yt-dlp fetches the best audio stream as is; ffmpeg then writes the 48 kHz original and
the 16 kHz mono analysis copy, so every container goes through one decoder. yt-dlp's
errors are mapped to the pipeline's typed errors (core/sources/errors.py): the source's
answer decides whether the failure is permanent (404, 403, not media) or worth a retry
(429, 5xx, cut off). Every connection yt-dlp makes is checked first
(core/sources/network_guard.py, installed when this module is imported).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from core.analysis import audio
from core.contracts.errors import (
    EmptyMedia,
    InvalidMedia,
    LiveStream,
    NetworkError,
    NotSingleVideo,
    PipelineError,
    ScratchFull,
    SourceTooSlow,
    TooLarge,
    TooLong,
    VideoPrivate,
)
from core.contracts.urls import redact_urls
from core.contracts.ytdlp_options import check_ytdlp_options
from core.sources.errors import classify_download_error
from core.sources.safety import SourcePolicy, current_policy, use_policy


@dataclass(frozen=True)
class DownloadedAudio:
    original: Path  # 48 kHz PCM WAV
    analysis: Path  # 16 kHz mono PCM WAV
    duration_s: float
    title: str | None


@dataclass(frozen=True)
class SourceLimits:
    """What one download may cost, whatever the source does: the duration the pipeline
    takes, the bytes it fetches, the time it waits, the slowest transfer it sits through."""

    max_duration_s: float
    max_bytes: int = 4 << 30
    timeout_s: float = 3600.0
    min_bytes_per_s: float = 8_000.0  # averaged over rate_window_s: a slow drip is cut off
    rate_window_s: float = 60.0
    quiet_s: float = 120.0  # no new byte and no new connection this long: the source went quiet


@dataclass(frozen=True)
class SourceAccess:
    """How this attempt reaches the source: the operator's cookies (a Netscape cookie
    file) and one proxy of their list, both secrets read from files on the worker, and
    yt-dlp options passed through settings (extractor args, player client, sleeps)."""

    cookies_file: Path | None = None
    proxy: str | None = None  # may hold credentials: never logged, never in a payload
    ytdlp_options: dict[str, Any] = field(default_factory=dict)


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
    limits: SourceLimits,
    silence_dbfs: float,
    ffmpeg: str | None = None,
    progress: Callable[[dict[str, float | str]], None] | None = None,
    access: SourceAccess | None = None,
    policy: SourcePolicy | None = None,
) -> DownloadedAudio:
    """Download ``url`` into ``workdir`` and return both WAV copies, checked for content.

    The source is probed first (its metadata, nothing downloaded): a playlist or feed,
    a live or upcoming stream, a restricted video or one too long by its metadata ends
    here, typed. The download is audio only where the source has it, and bounded in
    bytes, time and rate; the container's own duration is read before decoding, and
    ffmpeg never writes more than the duration limit. ``progress`` hears where the
    work is (bytes fetched, then seconds transcoded): the activity puts it in its
    heartbeat details, so a stuck step is visible as such. Every address it reaches is
    checked against ``policy`` (default: this process's settings)."""
    import yt_dlp  # with its network guard, at the first download: importing this module stays light

    from core.sources.network_guard import install_network_guard

    install_network_guard()
    max_duration_s = limits.max_duration_s
    report = progress or (lambda _details: None)
    workdir.mkdir(parents=True, exist_ok=True)
    guard = _TransferGuard(limits, report)
    options = ytdlp_params(workdir, limits, access or SourceAccess(), guard.hook)
    try:
        with use_policy(policy or current_policy()), guard.watching(), yt_dlp.YoutubeDL(options) as ydl:
            listed = ydl.extract_info(url, download=False, process=False)  # lists entries, fetches none
            _refuse_collection(listed)
            info = ydl.process_ie_result(listed, download=False)
            _refuse_collection(info)
            check_probe(info, limits)
            ydl.process_ie_result(info, download=True)
    except PipelineError:
        raise
    except Exception as exc:
        if guard.tripped is not None:  # the watchdog cut the transfer: its reason, not the symptom
            raise guard.tripped from None
        if isinstance(exc, yt_dlp.utils.YoutubeDLError):
            raise classify_download_error(exc) from None
        raise
    if guard.tripped is not None:  # tripped after the last read: the file may be cut short
        raise guard.tripped

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
            media_s=container_s,
        )
        if name == "analysis_16k":  # checked before the larger copy is made
            duration, level = audio.scan_wav(copies[name])
            if duration > max_duration_s:
                raise TooLong(f"more than the {max_duration_s:.0f} s limit of audio")
            audio.check_audible(duration, level, silence_dbfs)
    source.unlink(missing_ok=True)
    return DownloadedAudio(copies["original"], copies["analysis_16k"], duration, info.get("title"))


class YtdlpLog:
    """yt-dlp's messages, through its ``logger`` option, into this process's log stream
    (logger ``yt-dlp``) with every URL redacted: a source URL may carry a token. Its
    chatter (what it would print to the screen) is dropped; warnings and errors stay."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("yt-dlp")

    def debug(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        self._log.warning("ytdlp.warning", message=redact_urls(message))

    def error(self, message: str) -> None:
        self._log.warning("ytdlp.error", message=redact_urls(message))


def ytdlp_params(
    workdir: Path, limits: SourceLimits, access: SourceAccess, hook: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """yt-dlp's options for one download: the operator's allowed ones
    (core/contracts/ytdlp_options.py) under the pipeline's own, which always win."""
    own: dict[str, Any] = {
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
        "progress_hooks": [hook],
        "logger": YtdlpLog(),
        # no post-download fixups: they run ffmpeg outside core.analysis.audio's input whitelist,
        # and the transcode reads every container it takes as it is
        "fixup": "never",
    }
    options = {**check_ytdlp_options(access.ytdlp_options), **own}
    if access.cookies_file:  # a copy: yt-dlp writes the jar back, and the secret is read-only
        options["cookiefile"] = str(shutil.copyfile(access.cookies_file, workdir / "cookies.txt"))
    if access.proxy:
        options["proxy"] = access.proxy
    return options


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
    """Ends a transfer that runs too long, too slowly, too large, or goes quiet (yt-dlp's
    own checks need a size the source announces; an endless stream announces none).

    yt-dlp calls ``hook`` after each block it reads, but a source that sends a byte now
    and then keeps one read blocked for hours, and a socket timeout never fires. So a
    watchdog thread checks the same bounds every second and, once one is crossed, shuts
    the transfer's sockets down (``core.sources.network_guard``): the blocked read returns, and
    the download fails with the reason the watchdog found (``tripped``)."""

    def __init__(self, limits: SourceLimits, report: Callable[[dict[str, float | str]], None]):
        self.limits = limits
        self.report = report
        self.started = self.moved_at = time.monotonic()
        self.bytes = 0
        self.marks: list[tuple[float, int]] = []
        self.tripped: PipelineError | None = None
        self._stop = threading.Event()

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        from core.sources.network_guard import sockets_opened

        with sockets_opened() as sockets:
            watchdog = threading.Thread(
                target=self._watch, args=(sockets,), daemon=True, name="transfer-watchdog"
            )
            watchdog.start()
            try:
                yield
            finally:
                self._stop.set()
                watchdog.join()

    def _watch(self, sockets: list[socket.socket]) -> None:
        from core.sources.network_guard import shut_down

        opened = 0
        while not self._stop.wait(WATCH_INTERVAL_S):
            now = time.monotonic()
            if len(sockets) > opened:  # a new connection (a probe request, a redirect): activity
                opened, self.moved_at = len(sockets), now
            if self.tripped is None:
                try:
                    self.check(now)
                except PipelineError as exc:
                    self.tripped = exc
            if self.tripped is not None:  # again each round: yt-dlp's own retry opens a new one
                shut_down(sockets)

    def hook(self, status: dict[str, Any]) -> None:
        now = time.monotonic()
        fetched = int(status.get("downloaded_bytes") or 0)
        if fetched > self.bytes or not self.marks:
            self.moved_at = now
        self.bytes = fetched
        self.marks.append((now, fetched))
        while len(self.marks) > 1 and now - self.marks[1][0] >= self.limits.rate_window_s:
            self.marks.pop(0)  # the first mark stays the newest one a whole window old
        self.report({"step": "fetch", "bytes": float(fetched)})
        if self.tripped is not None:
            raise self.tripped
        self.check(now)

    def check(self, now: float) -> None:
        limits = self.limits
        if self.bytes > limits.max_bytes:
            raise TooLarge(f"more than {limits.max_bytes >> 20} MiB fetched")
        if now - self.started > limits.timeout_s:
            raise SourceTooSlow(f"the download took longer than {limits.timeout_s:.0f} s")
        if now - self.moved_at > limits.quiet_s:
            raise SourceTooSlow(f"the source sent nothing for {limits.quiet_s:.0f} s")
        if not self.marks or now - self.marks[0][0] < limits.rate_window_s:
            return  # the rate is taken over a whole window of the transfer (the probe excluded)
        since, fetched = self.marks[0]
        if (self.bytes - fetched) / (now - since) < limits.min_bytes_per_s:
            raise SourceTooSlow(
                f"under {limits.min_bytes_per_s / 1000:.0f} kB/s for {limits.rate_window_s:.0f} s"
            )


WATCH_INTERVAL_S = 1.0


def _check_scratch(workdir: Path, duration_s: float) -> None:
    """Both WAV copies must fit on the scratch disk, or this worker is the wrong place."""
    needed = duration_s * (audio.ORIGINAL_RATE + audio.ANALYSIS_RATE) * 2 * SCRATCH_MARGIN
    free = shutil.disk_usage(workdir).free
    if free < needed:
        raise ScratchFull(f"{free >> 20} MiB free on the scratch disk, {int(needed) >> 20} MiB needed")
