"""Fetch one video's audio with yt-dlp and make the two WAV copies with ffmpeg.

yt-dlp fetches the best audio stream as is; ffmpeg then writes the 48 kHz original and
the 16 kHz mono analysis copy, so every container goes through one decoder. yt-dlp's
errors are mapped to the pipeline's typed errors: the source's answer decides whether
the failure is permanent (404, 403, not media) or worth a retry (429, 5xx, cut off).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yt_dlp

from core import audio
from core.errors import (
    EmptyMedia,
    InvalidMedia,
    NetworkError,
    PipelineError,
    RateLimited,
    TooLong,
    VideoPrivate,
    VideoUnavailable,
)


@dataclass(frozen=True)
class DownloadedAudio:
    original: Path  # 48 kHz PCM WAV
    analysis: Path  # 16 kHz mono PCM WAV
    duration_s: float
    title: str | None


# Order matters: the first pattern that matches the yt-dlp message wins.
_ERROR_PATTERNS: list[tuple[str, type[PipelineError]]] = [
    (r"HTTP Error 429|Too Many Requests|rate.?limit", RateLimited),
    (r"Did not get any data blocks", EmptyMedia),  # a 200 answer with an empty body
    (r"HTTP Error (404|410)|Video unavailable|has been removed|does not exist", VideoUnavailable),
    (r"HTTP Error (401|403)|Private video|members-only|not available in your country|geo", VideoPrivate),
    (r"HTTP Error 5\d\d|timed out|Connection|reset by peer|too short|IncompleteRead|"
     r"more expected|Temporary failure", NetworkError),
    (r"Unsupported URL|no (video|audio) formats|Requested format is not available", InvalidMedia),
]  # fmt: skip


def classify_download_error(message: str) -> PipelineError:
    for pattern, error in _ERROR_PATTERNS:
        if re.search(pattern, message, flags=re.IGNORECASE):
            return error(_shorten(message))
    return NetworkError(_shorten(message))  # unknown: retry, the policy caps attempts


def fetch_audio(
    url: str,
    workdir: Path,
    *,
    max_duration_s: float,
    silence_dbfs: float,
    ffmpeg: str | None = None,
    progress: Callable[[dict[str, float | str]], None] | None = None,
) -> DownloadedAudio:
    """Download ``url`` into ``workdir`` and return both WAV copies, checked for content.

    ``progress`` hears where the work is (bytes fetched, then seconds transcoded): the
    activity puts it in its heartbeat details, so a stuck step is visible as such."""
    report = progress or (lambda _details: None)
    workdir.mkdir(parents=True, exist_ok=True)
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
        "progress_hooks": [lambda d: report({"step": "fetch", "bytes": float(d.get("downloaded_bytes") or 0)})],
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.DownloadError as exc:
        raise classify_download_error(str(exc)) from None
    except yt_dlp.utils.YoutubeDLError as exc:
        raise classify_download_error(str(exc)) from None

    hinted = (info or {}).get("duration")
    if hinted and hinted > max_duration_s:
        raise TooLong(f"{hinted:.0f} s is longer than the {max_duration_s:.0f} s limit")
    sources = [p for p in workdir.glob("source.*") if p.suffix not in {".part", ".ytdl"}]
    if not sources:
        raise NetworkError("yt-dlp reported success but wrote no file")
    source = sources[0]
    if source.stat().st_size == 0:
        raise EmptyMedia("the source file is empty (0 bytes)")

    copies = {}
    for name, rate in (("original", audio.ORIGINAL_RATE), ("analysis_16k", audio.ANALYSIS_RATE)):
        copies[name] = audio.transcode(
            source, workdir / f"{name}.wav", rate, 1, ffmpeg,
            on_progress=lambda t, step=f"transcode {name}": report({"step": step, "audio_s": round(t, 1)}),
        )  # fmt: skip
    original, analysis = copies["original"], copies["analysis_16k"]
    source.unlink(missing_ok=True)

    samples, rate = audio.load_wav(analysis)
    audio.check_audible(samples, rate, silence_dbfs)
    duration = len(samples) / rate
    if duration > max_duration_s:
        raise TooLong(f"{duration:.0f} s is longer than the {max_duration_s:.0f} s limit")
    return DownloadedAudio(original, analysis, duration, (info or {}).get("title"))


def _shorten(message: str) -> str:
    message = re.sub(r"\x1b\[[0-9;]*m", "", message).replace("ERROR: ", "")
    return message.strip()[:300]
