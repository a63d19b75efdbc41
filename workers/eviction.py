"""Turn a cloud's eviction notice into the same drain as SIGTERM.

Spot/preemptible VMs get a notice 30 s to 2 min before they disappear, on the
instance metadata endpoint. The worker polls it and, on a notice, stops polling for
new work and lets in-flight activities checkpoint and hand over (workers/worker.py).

- azure: Scheduled Events, ``GET /metadata/scheduledevents`` with ``Metadata: true``;
  a ``Preempt`` (or ``Terminate``) event is the notice.
- aws: ``GET /latest/meta-data/spot/instance-action`` answers 404 until a stop or
  terminate is scheduled, then 200 with its time. Through IMDSv2, which current
  instances require (IMDSv1 GETs get 401): a session token from ``PUT /latest/api/token``
  goes with every GET, and a new one is fetched when a GET is refused.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request

import structlog

log = structlog.get_logger("eviction")

DEFAULT_URLS = {
    "azure": "http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01",
    "aws": "http://169.254.169.254/latest/meta-data/spot/instance-action",
}


AZURE_VM_NAME_URL = "http://169.254.169.254/metadata/instance/compute/name?api-version=2021-02-01&format=text"


def notice_in(provider: str, status: int, body: bytes, this_vm: str | None = None) -> str | None:
    """The notice described by one metadata answer, or None.

    Azure lists events for every VM of a scale set or availability set; one is ours if
    its ``Resources`` name this VM (or, when our name is unknown, if it names any)."""
    if provider == "aws":
        return body.decode(errors="replace")[:200] if status == 200 else None
    if provider == "azure" and status == 200:
        events = json.loads(body or b"{}").get("Events", [])
        for event in events:
            resources = event.get("Resources") or []
            ours = this_vm is None or not resources or this_vm in resources
            if event.get("EventType") in {"Preempt", "Terminate"} and ours:
                return f"{event.get('EventType')} at {event.get('NotBefore', '?')}"
    return None


AWS_TOKEN_PATH = "/latest/api/token"
AWS_TOKEN_TTL_S = 21600  # the longest IMDSv2 allows


class AwsSession:
    """An IMDSv2 session token for the metadata host of ``url``, fetched when needed."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.token_url = f"{parts.scheme}://{parts.netloc}{AWS_TOKEN_PATH}"
        self.token: str | None = None

    def headers(self) -> dict[str, str]:
        if self.token is None:
            ttl = {"X-aws-ec2-metadata-token-ttl-seconds": str(AWS_TOKEN_TTL_S)}
            request = urllib.request.Request(self.token_url, method="PUT", headers=ttl)
            with urllib.request.urlopen(request, timeout=2) as response:
                self.token = response.read().decode().strip()
        return {"X-aws-ec2-metadata-token": self.token}

    def refused(self) -> None:
        """The token expired or was revoked: the next poll asks for a new one."""
        self.token = None


def _fetch(url: str, provider: str, session: AwsSession | None = None) -> tuple[int, bytes]:
    headers = {"Metadata": "true"} if provider == "azure" else session.headers() if session else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        if err.code == 401 and session:
            session.refused()
        return err.code, b""


async def watch(provider: str, url: str | None, stop: asyncio.Event, interval_s: float = 2.0) -> None:
    """Poll until a notice arrives (then set ``stop``) or ``stop`` is set elsewhere."""
    this_vm = None
    if provider == "azure" and url is None:  # on Azure itself: learn our name once
        try:
            status, body = await asyncio.to_thread(_fetch, AZURE_VM_NAME_URL, provider)
            this_vm = body.decode().strip() if status == 200 and body else None
        except Exception:
            this_vm = None
    url = url or DEFAULT_URLS[provider]
    session = AwsSession(url) if provider == "aws" else None
    while not stop.is_set():
        try:
            status, body = await asyncio.to_thread(_fetch, url, provider, session)
            notice = notice_in(provider, status, body, this_vm)
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
