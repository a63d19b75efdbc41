"""One way to connect to Temporal, for workers, the starter and the embedded stack.

The pydantic data converter lets the typed contracts (``core.contracts``) cross the wire
as JSON. An API key (Temporal Cloud) comes from settings, never from a payload; so do
the TLS files of a self-hosted cluster that requires mutual TLS (``tls_config``).

A server that is down or still starting (a restart, a pod scheduled next to its
workers, `docker compose up`) is waited for up to ``wait_s`` instead of failing the
first call: its port can open seconds before its frontend reports healthy. Anything
else (a bad API key, a missing namespace, a certificate the other side rejects) fails
at once.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import structlog
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from core.service.backoff import jittered
from core.service.settings import Settings

log = structlog.get_logger("temporal")

# Substrings of the SDK's connect error while the server is unreachable or starting.
_NOT_READY = ("Server connection error", "code: Unavailable")
# ...unless the error is about a certificate (wrong CA or server name, expired): that
# does not go away by waiting.
_TLS_FAILURE = "certificate"


class TemporalUnavailable(RuntimeError):
    """The server did not answer within the wait: down, starting, or the wrong address."""


def tls_config(settings: Settings) -> TLSConfig | bool:
    """What the client hands the SDK as ``tls``: a TLSConfig when any TLS file or a server
    name is set (mutual TLS: a client certificate and key the server's CA trusts, and the
    CA that signed the server's certificate when it is private), else whether plain TLS is
    on (``PIPELINE_TEMPORAL_TLS``, or an API key).

    Files are read here, at connect time, so a bad path or half a key pair stops the
    worker or starter at start-up with an error that names the setting."""
    files = {  # TLSConfig field: (setting, path)
        "server_root_ca_cert": ("SERVER_CA_CERT_PATH", settings.temporal_tls_server_ca_cert_path),
        "client_cert": ("CLIENT_CERT_PATH", settings.temporal_tls_client_cert_path),
        "client_private_key": ("CLIENT_KEY_PATH", settings.temporal_tls_client_key_path),
    }
    if not any(path for _, path in files.values()) and not settings.temporal_tls_server_name:
        api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else ""
        return settings.temporal_tls or bool(api_key)
    if bool(settings.temporal_tls_client_cert_path) != bool(settings.temporal_tls_client_key_path):
        raise ValueError(
            "mutual TLS needs both PIPELINE_TEMPORAL_TLS_CLIENT_CERT_PATH "
            "and PIPELINE_TEMPORAL_TLS_CLIENT_KEY_PATH"
        )
    pem: dict[str, bytes | None] = {}
    for field, (name, path) in files.items():
        try:
            pem[field] = Path(path).read_bytes() if path else None
        except OSError as error:
            raise ValueError(f"PIPELINE_TEMPORAL_TLS_{name}: cannot read {path}: {error.strerror}") from None
    return TLSConfig(
        domain=settings.temporal_tls_server_name or None,
        server_root_ca_cert=pem["server_root_ca_cert"],
        client_cert=pem["client_cert"],
        client_private_key=pem["client_private_key"],
    )


async def connect(settings: Settings, wait_s: float = 60.0, runtime: Runtime | None = None) -> Client:
    """``runtime``: the SDK runtime whose telemetry the client and its workers use
    (workers/telemetry.py); None: the SDK's default."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    tls = tls_config(settings)
    deadline = time.monotonic() + wait_s
    delay = 0.2
    for attempt in itertools.count(1):
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                api_key=api_key,
                tls=tls,
                data_converter=pydantic_data_converter,
                runtime=runtime,
            )
        except RuntimeError as error:
            if not any(text in str(error) for text in _NOT_READY) or _TLS_FAILURE in str(error).lower():
                raise
            if time.monotonic() + delay > deadline:
                raise TemporalUnavailable(
                    f"Temporal at {settings.temporal_address} did not answer within {wait_s:g} s "
                    f"(is it running? PIPELINE_TEMPORAL_ADDRESS): {error}"
                ) from None
            if attempt == 1:  # once: the final error says the rest
                log.warning("temporal.not_ready", address=settings.temporal_address, waiting_s=wait_s)
            await asyncio.sleep(jittered(delay))
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable: itertools.count never ends")
