"""What a failed object-store call means, and riding out an outage.

A missing key is KeyError (callers ask "is it there?"), a refusal of the caller's own
making (bad credentials, a bad request) is raised as it came, and everything else is
StorageUnavailable: an outage, worth waiting out rather than failing the video.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

import structlog

from core.contracts.errors import StorageUnavailable
from core.service.backoff import jittered

T = TypeVar("T")

OUTAGE_RETRY_MAX_S = 60.0  # longest pause between two tries while riding out an outage

log = structlog.get_logger("storage")


class RidesOut(Protocol):
    ride_out_s: float  # how long an outage is waited out; 0: not at all


_riding_out: set[int] = set()  # threads waiting out a storage outage now


def riding_out(thread_id: int) -> bool:
    """Whether that thread is waiting out a storage outage: waiting, not stuck."""
    return thread_id in _riding_out


def rides_out(method: Callable[..., T]) -> Callable[..., T]:
    """Retry a storage call through an outage for up to the store's ``ride_out_s``
    (backing off to a minute between tries), so a worker's stages wait out an hour of
    R2 trouble instead of failing every video in flight; past it, StorageUnavailable
    goes to Temporal's retry policy. Sleeps in short slices: a cancelled attempt
    stops within a second."""

    @functools.wraps(method)
    def wrapper(self: RidesOut, *args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + self.ride_out_s
        delay = 1.0
        while True:
            try:
                return method(self, *args, **kwargs)
            except StorageUnavailable as exc:
                pause = min(jittered(delay), deadline - time.monotonic())
                if pause <= 0:
                    raise
                log.warning(
                    "storage.unavailable_retrying",
                    operation=method.__name__,
                    retry_in_s=round(pause, 1),
                    error=str(exc)[:200],
                )
                until = time.monotonic() + pause
                _riding_out.add(threading.get_ident())
                try:
                    while time.monotonic() < until:
                        time.sleep(min(1.0, until - time.monotonic()))
                finally:
                    _riding_out.discard(threading.get_ident())
                delay = min(2 * delay, OUTAGE_RETRY_MAX_S)

    return wrapper


def as_storage_error(exc: Exception, operation: str) -> Exception:
    from botocore.exceptions import ClientError  # loaded by then: the error came from it

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}:
            return KeyError(f"{operation}: {code}")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status and status < 500 and code not in {"SlowDown", "RequestTimeout", "429"}:
            return cast(Exception, exc)  # a client error (bad credentials, bad request): not an outage
    return StorageUnavailable(f"storage {operation} failed: {type(exc).__name__}: {exc}")
