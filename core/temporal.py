"""One way to connect to Temporal, for workers, the starter and the embedded stack.

The pydantic data converter lets the typed contracts in core.models cross the wire
as JSON. An API key (Temporal Cloud) comes from settings, never from a payload.

A server that is down or still starting (a restart, a pod scheduled next to its
workers, `docker compose up`) is waited for up to ``wait_s`` instead of failing the
first call: its port can open seconds before its frontend reports healthy. Anything
else (a bad API key, a missing namespace) fails at once.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import structlog
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from core.settings import Settings

log = structlog.get_logger("temporal")

# Substrings of the SDK's connect error while the server is unreachable or starting.
_NOT_READY = ("Server connection error", "code: Unavailable")


class TemporalUnavailable(RuntimeError):
    """The server did not answer within the wait: down, starting, or the wrong address."""


async def connect(settings: Settings, wait_s: float = 60.0, runtime: Runtime | None = None) -> Client:
    """``runtime``: the SDK runtime whose telemetry the client and its workers use
    (core.metrics); None: the SDK's default."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    deadline = time.monotonic() + wait_s
    delay = 0.2
    for attempt in itertools.count(1):
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                api_key=api_key,
                tls=settings.temporal_tls or bool(api_key),
                data_converter=pydantic_data_converter,
                runtime=runtime,
            )
        except RuntimeError as error:
            if not any(text in str(error) for text in _NOT_READY):
                raise
            if time.monotonic() + delay > deadline:
                raise TemporalUnavailable(
                    f"Temporal at {settings.temporal_address} did not answer within {wait_s:g} s "
                    f"(is it running? PIPELINE_TEMPORAL_ADDRESS): {error}"
                ) from None
            if attempt == 1:  # once: the final error says the rest
                log.warning("temporal.not_ready", address=settings.temporal_address, waiting_s=wait_s)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
