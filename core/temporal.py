"""One way to connect to Temporal, for workers, the starter and the embedded stack.

The pydantic data converter lets the typed contracts in core.models cross the wire
as JSON. An API key (Temporal Cloud) comes from settings, never from a payload.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from core.settings import Settings


async def connect(settings: Settings) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=api_key,
        tls=settings.temporal_tls or bool(api_key),
        data_converter=pydantic_data_converter,
    )
