"""URLs as they may be stored, logged and compared: credentials and query values
redacted, the exact original named by its hash.

A URL may carry a token or a password; Temporal keeps every payload in its history and
shows it in the Web UI, so what crosses a boundary is the redacted URL and its hash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

# query keys whose values are a public id or position (YouTube's watch URLs), never a
# credential: kept so a stored URL still says what was downloaded
PUBLIC_QUERY_KEYS = {"v", "list", "index", "t"}
REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """``url`` without credentials: userinfo removed, every query and fragment value
    replaced by REDACTED (the keys stay, and the values of PUBLIC_QUERY_KEYS)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc.rpartition("@")[2]
    query, fragment = _redact_pairs(parts.query), _redact_pairs(parts.fragment)
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_pairs(text: str) -> str:
    if not text:
        return text
    pairs = []
    for item in text.split("&"):
        key, sep, value = item.partition("=")
        if not sep:
            pairs.append(REDACTED if key else key)
        else:
            pairs.append(f"{key}={value if key.lower() in PUBLIC_QUERY_KEYS else REDACTED}")
    return "&".join(pairs)


_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_urls(text: str) -> str:
    """``text`` (a log line, an error message) with every URL in it redacted."""
    return _URL.sub(lambda m: _redact_match(m.group(0)), text)


def _redact_match(found: str) -> str:
    """A URL found in prose, less the punctuation that ends the sentence around it."""
    url = found.rstrip(".,:;!?)")
    return redact_url(url) + found[len(url) :]


def url_sha256(url: str) -> str:
    """Names the exact original URL without storing it: what a committed video is
    compared on (an id reused for another URL is a conflict)."""
    return hashlib.sha256(url.encode()).hexdigest()


def same_source(committed: Mapping[str, object], sha256: str) -> bool:
    """Whether metadata.json's ``source`` names the URL of this ``url_sha256``: by its
    stored hash; commits made before it existed stored the URL itself."""
    if committed.get("url_sha256"):
        return committed["url_sha256"] == sha256
    return isinstance(committed.get("url"), str) and url_sha256(str(committed["url"])) == sha256
