"""yt-dlp's failures, as the pipeline's typed errors.

yt-dlp reports every failure as text (its own, the extractor's, or the source's answer
relayed), and the type decides what happens next: permanent (404, 403, not media, a
refused source) ends the video, worth a retry (429, 5xx, cut off) goes back to
Temporal's retry policy. The message also goes into logs, the Web UI and search
attributes, so it is shortened and its URLs redacted.
"""

from __future__ import annotations

import re

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

# Order matters: the first pattern that matches wins. Patterns are yt-dlp's (and
# YouTube's, as yt-dlp relays them) phrases, never bare words, and they see the message
# without its "[extractor] <video id>: " prefix and without URLs (_matchable): a 503 on
# a video whose id contains "geo" is a 503. tests/test_error_mapping.py holds the real
# messages, taken from the pinned yt-dlp's code.
_ERROR_PATTERNS: list[tuple[str, type[PipelineError]]] = [
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


def _shorten(message: str) -> str:
    message = re.sub(r"\x1b\[[0-9;]*m", "", message).replace("ERROR: ", "")
    return urls.redact_urls(message).strip()[:300]


def _matchable(message: str) -> str:
    """What the patterns see: no colour codes, no "ERROR: [extractor] <video id>: "
    prefix and no URLs, the parts of a message the source or the CSV chose."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", message).strip()
    text = re.sub(r"^ERROR: ", "", text)
    text = re.sub(r"^\[(?!download\])[^\]\s]+\] .*?: ", "", text)
    return urls._URL.sub("<url>", text)
