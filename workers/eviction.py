"""Turn a cloud's eviction notice into the same drain as SIGTERM.

Spot/preemptible VMs get a notice 30 s to 2 min before they disappear, on the
instance metadata endpoint. The worker polls it and, on a notice, stops polling for
new work and lets in-flight activities checkpoint and hand over (workers/worker.py).

- azure: Scheduled Events, ``GET /metadata/scheduledevents`` with ``Metadata: true``;
  a ``Preempt`` (or ``Terminate``) event is the notice.
- aws: ``GET /latest/meta-data/spot/instance-action`` answers 404 until a stop or
  terminate is scheduled, then 200 with its time.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import structlog

log = structlog.get_logger("eviction")

DEFAULT_URLS = {
    "azure": "http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01",
    "aws": "http://169.254.169.254/latest/meta-data/spot/instance-action",
}


def notice_in(provider: str, status: int, body: bytes) -> str | None:
    """The notice described by one metadata answer, or None."""
    if provider == "aws":
        return body.decode(errors="replace")[:200] if status == 200 else None
    if provider == "azure" and status == 200:
        events = json.loads(body or b"{}").get("Events", [])
        for event in events:
            if event.get("EventType") in {"Preempt", "Terminate"}:
                return f"{event.get('EventType')} at {event.get('NotBefore', '?')}"
    return None


def _fetch(url: str, provider: str) -> tuple[int, bytes]:
    headers = {"Metadata": "true"} if provider == "azure" else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


async def watch(provider: str, url: str | None, stop: asyncio.Event, interval_s: float = 2.0) -> None:
    """Poll until a notice arrives (then set ``stop``) or ``stop`` is set elsewhere."""
    url = url or DEFAULT_URLS[provider]
    while not stop.is_set():
        try:
            status, body = await asyncio.to_thread(_fetch, url, provider)
            notice = notice_in(provider, status, body)
        except Exception as exc:  # metadata endpoint unreachable: keep trying, quietly
            log.debug("eviction.poll_failed", error=str(exc))
            notice = None
        if notice:
            log.warning("eviction.notice", provider=provider, notice=notice)
            stop.set()
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            pass
