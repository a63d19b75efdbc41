"""yt-dlp's failures, as the pipeline's typed errors.

The type decides what happens next: permanent (404, 403, not media, a refused source)
ends the video, worth a retry (429, 5xx, cut off) goes back to Temporal's retry policy.
What yt-dlp raised decides first: the HTTP status it got, its geo and unsupported
errors, and the pipeline's own errors raised inside its networking. Its message decides
only what no type carries (YouTube's phrases: private, members-only, a bot check, a
premiere), so a server's reason phrase ("404 Too Many Requests") cannot change the type.
The message also goes into logs, the Web UI and search attributes, so it is shortened
and its URLs redacted.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from core.contracts import urls
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

# yt-dlp is imported where a failure is classified: the workflow code imports this
# module's types by way of the activities, and must not load yt-dlp (tests/test_layout.py)

# Order matters: the first pattern that matches wins. Patterns are yt-dlp's (and
# YouTube's, as yt-dlp relays them) phrases, never bare words, and they see the message
# without its "[extractor] <video id>: " prefix, URLs and reason phrases (_matchable): a
# 503 on a video whose id contains "geo" is a 503. tests/test_error_mapping.py holds the
# real messages, taken from the pinned yt-dlp's code.
# The verdicts: more specific than any HTTP status (a Cloudflare challenge is a 403),
# they decide before it.
_VERDICTS: list[tuple[str, type[PipelineError]]] = [
    (re.escape(safety.REFUSED), UnsafeSource),  # core/sources/safety.py, from inside yt-dlp's networking
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
]
# what a status also says, and the rest
_PHRASES: list[tuple[str, type[PipelineError]]] = [
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
_ERROR_PATTERNS = _VERDICTS + _PHRASES


def classify_download_error(error: BaseException) -> PipelineError:
    """The typed error for what yt-dlp raised: by type and HTTP status where it carries
    them, else by its message (classify_message)."""
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import GeoRestrictedError, UnsupportedError

    message = _shorten(str(error))
    causes = list(_causes(error))
    for cause, _ in causes:
        if isinstance(cause, PipelineError):  # ours, from inside yt-dlp's networking (safety.py)
            return type(cause)(message)
        if isinstance(cause, GeoRestrictedError):
            return VideoPrivate(message)
        if isinstance(cause, UnsupportedError):
            return InvalidMedia(message)
    if verdict := _first_match(_VERDICTS, str(error)):
        return verdict(message)
    for cause, from_page in causes:
        if isinstance(cause, HTTPError) and (typed := _by_status(cause.status, from_page)):
            return typed(message)
    return classify_message(str(error))


def _by_status(status: int, from_page: bool) -> type[PipelineError] | None:
    """A status the page (the extractor's request) or the media download got. A 401 or 403
    on the page is a private video; on the media, after the page answered, it is YouTube's
    passing refusal and worth a retry. A 404 on the media is left to the message: a lost
    fragment is retried, a missing file is not."""
    if status == 429:
        return RateLimited
    if status >= 500:
        return NetworkError
    if status in (401, 403):
        return VideoPrivate if from_page else NetworkError
    if status in (404, 410) and from_page:
        return VideoUnavailable
    return None


def _causes(error: BaseException) -> Iterator[tuple[BaseException, bool]]:
    """What yt-dlp raised, first to last, and whether it came from an extractor (the page)
    rather than the media download. A DownloadError carries the original in ``exc_info``,
    whose traceback runs through the extractor package or the downloader's."""
    from yt_dlp.utils import DownloadError, ExtractorError

    seen: set[int] = set()
    pending: list[tuple[BaseException | None, bool]] = [(error, False)]
    while pending:
        cause, from_page = pending.pop(0)
        if cause is None or id(cause) in seen or len(seen) > 8:
            continue
        seen.add(id(cause))
        yield cause, from_page
        if isinstance(cause, DownloadError) and cause.exc_info and cause.exc_info[1] is not None:
            pending.append((cause.exc_info[1], _in_extractor(cause.exc_info[2])))
        if isinstance(cause, ExtractorError) and isinstance(cause.cause, BaseException):
            pending.append((cause.cause, True))
        pending.append((cause.__cause__, from_page))


def _in_extractor(tb: TracebackType | None) -> bool:
    import yt_dlp.extractor

    extractors = str(Path(yt_dlp.extractor.__file__).parent)
    return any(frame.filename.startswith(extractors) for frame in traceback.extract_tb(tb))


def classify_message(message: str) -> PipelineError:
    """The typed error for a yt-dlp message alone; its text is the message, shortened,
    with every URL in it redacted (it goes into logs, the Web UI and search attributes)."""
    error = (
        _first_match(_ERROR_PATTERNS, message) or NetworkError
    )  # unknown: retried, the policy caps attempts
    return error(_shorten(message))


def _first_match(patterns: list[tuple[str, type[PipelineError]]], message: str) -> type[PipelineError] | None:
    text = _matchable(message)
    return next((error for pattern, error in patterns if re.search(pattern, text, flags=re.IGNORECASE)), None)


def _shorten(message: str) -> str:
    message = re.sub(r"\x1b\[[0-9;]*m", "", message).replace("ERROR: ", "")
    return urls.redact_urls(message).strip()[:300]


def _matchable(message: str) -> str:
    """What the patterns see: no colour codes, no "ERROR: [extractor] <video id>: "
    prefix, no URLs and no HTTP reason phrases, the parts of a message the source or the
    CSV chose."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", message).strip()
    text = re.sub(r"^ERROR: ", "", text)
    text = re.sub(r"^\[(?!download\])[^\]\s]+\] .*?: ", "", text)
    text = _REASON.sub(r"\1", text)
    return urls._URL.sub("<url>", text)


# "HTTP Error 404: <reason>": the reason phrase is the server's choice ("404 Too Many
# Requests"), so the patterns never see it; the status stays
_REASON = re.compile(r"(HTTP ?Error \d{3}): [^()<>\n]*")
