"""Which source URLs the pipeline may fetch, and URLs as the pipeline may show them.

A CSV row names any URL, and whatever answers it may redirect anywhere: a worker that
fetches what it is told would read cloud metadata (169.254.169.254 hands out the
node's credentials), cluster-internal services and its own pod's ports. So a URL is
refused unless every address its host has is a public one:

- ``check_url(url, policy, resolve=False)`` needs no DNS: the scheme, hosts named
  after loopback or a metadata service, and literal addresses in every spelling the
  C resolver accepts (``2852039166``, ``0xA9FEA9FE``, ``0251.0376.0251.0376`` and
  ``169.254.43518`` all mean 169.254.169.254; ``core/sources/literal_addresses.py`` reads
  them). The starter runs it on each row.
- ``resolve_checked(host, port, policy)`` resolves the host once and returns its
  addresses only if every one is allowed: the worker connects to exactly those (the
  yt-dlp guard, ``core/sources/network_guard.py``), so a second DNS answer
  (rebinding) never reaches a socket.

Loopback is the one class a setting can allow: the embedded default serves its media
from 127.0.0.1. ``PIPELINE_ALLOW_LOOPBACK_SOURCES`` decides; unset, it is allowed only
when the pipeline itself runs on loopback (Temporal and storage both on this machine,
which is the embedded default), so a production worker refuses it without being told.

``redact_url`` is the form of a URL that may be stored or logged: no userinfo, and
query values replaced (signed-URL signatures and tokens live there). The original URL
stays in the batch input and the workflow payload, which need it to download.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import socket
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.contracts.errors import UnsafeSource
from core.contracts.urls import redact_url
from core.sources.literal_addresses import IPAddress, literal_address

if TYPE_CHECKING:
    from core.service.settings import Settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REFUSED = "refused unsafe source"  # every refusal says this: classify_download_error keys on it
SCHEMES = {"http", "https"}
LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
CGNAT = ipaddress.ip_network("100.64.0.0/10")  # shared address space: cloud VPC and k8s ranges use it
UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # a NAT64 gateway routes these to the embedded IPv4
# instance metadata services; each also falls in a refused class, named here for the message
METADATA_ADDRESSES = {
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.169.253", "fd00:ec2::254", "100.100.100.200")
}
METADATA_HOSTS = {
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
}
LOOPBACK_HOSTS = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


@dataclass(frozen=True)
class SourcePolicy:
    """The loopback networks sources may use (none in production)."""

    loopback: tuple[IPNetwork, ...] = ()

    def __hash__(self) -> int:  # asked per row (host_refusal's cache): hashed once
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash(self.loopback)

    @classmethod
    def from_settings(cls, settings: Settings) -> SourcePolicy:
        return cls(LOOPBACK if loopback_allowed(settings) else ())

    def allows(self, address: IPAddress) -> bool:
        return any(address in network for network in self.loopback if network.version == address.version)


def loopback_allowed(settings: Settings) -> bool:
    """``settings.allow_loopback_sources``, or when unset: whether this process's Temporal
    and object store are both on loopback (the embedded default, where the media server
    is too). A production worker reaches them over the network, so it refuses loopback."""
    if settings.allow_loopback_sources is not None:
        return bool(settings.allow_loopback_sources)
    temporal_host = settings.temporal_address.rsplit(":", 1)[0].strip("[]")
    storage_host = urlsplit(settings.s3_endpoint_url or "https://s3.amazonaws.com").hostname or ""
    return _is_loopback_name(temporal_host) and _is_loopback_name(storage_host)


# The policy a download runs under (``fetch_audio`` sets it from its worker's settings for
# the download's duration): the network guard, deep inside yt-dlp, reads it from here.
_active: ContextVar[SourcePolicy | None] = ContextVar("source_policy", default=None)


def current_policy() -> SourcePolicy:
    """The policy of the download running in this thread, else this process's settings'."""
    active = _active.get()
    if active is not None:
        return active
    from core.service.settings import get_settings

    return SourcePolicy.from_settings(get_settings())


@contextlib.contextmanager
def use_policy(policy: SourcePolicy) -> Iterator[SourcePolicy]:
    """Run the enclosed download (in this thread) under ``policy``."""
    token = _active.set(policy)
    try:
        yield policy
    finally:
        _active.reset(token)


# --- the checks -----------------------------------------------------------------------
# http(s), a host of letters, digits, dots and hyphens (no userinfo, no brackets, no
# escapes), an optional port, then the path, query, fragment or the end: what urlsplit
# would read as that very hostname (lower-cased by host_refusal)
_PLAIN_URL = re.compile(r"(?i)https?://([a-z0-9.-]+)(?::[0-9]{1,5})?(?=[/?#]|$)")


def check_url(url: str, policy: SourcePolicy, resolve: bool = False) -> None:
    """Raise UnsafeSource unless ``url`` may be fetched. Without ``resolve`` no DNS is
    asked: what a URL says by itself (scheme, names, literal addresses) is checked."""
    plain = None if resolve else _PLAIN_URL.match(url)
    if plain:  # the common shape, read without urlsplit: the starter checks 340,000 of them
        why = host_refusal(plain.group(1).rstrip("."), policy)
        if why:
            raise UnsafeSource(f"{REFUSED} {redact_url(url)}: {why}")
        return
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeSource(f"{REFUSED} {redact_url(url)}: only http and https are fetched")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeSource(f"{REFUSED} {redact_url(url)}: no host")
    why = host_refusal(host, policy)
    if why:
        raise UnsafeSource(f"{REFUSED} {redact_url(url)}: {why}")
    if resolve and literal_address(host) is None:
        try:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError:
            raise UnsafeSource(f"{REFUSED} {redact_url(url)}: the port is not a number") from None
        with contextlib.suppress(socket.gaierror):  # unknown names fail when connecting, not here
            resolve_checked(host, port, policy, url)


@functools.lru_cache(maxsize=4096)
def host_refusal(host: str, policy: SourcePolicy) -> str | None:
    """Why ``host`` (a name or a literal address) is refused without resolving it, or None.
    Pure, and asked once per row: a batch names a few hosts 340,000 times, so it is cached."""
    name = host.lower().rstrip(".")
    if name in METADATA_HOSTS:
        return f"{name} is a cloud metadata service"
    address = literal_address(name)
    if address is not None:
        why = address_refusal(address, policy)
        return f"{host} is {why}" if why else None
    if _is_loopback_name(name) and not policy.loopback:
        return f"{name} is loopback"
    return None


def resolve_checked(host: str, port: int, policy: SourcePolicy, url: str | None = None) -> list[str]:
    """The addresses of ``host``, each allowed by ``policy``, in the resolver's order;
    UnsafeSource if any one is refused (a name that also points inside is not a public
    source). Connect to these: resolving again could give another answer."""
    shown = redact_url(url) if url else host
    why = host_refusal(host, policy)
    if why:
        raise UnsafeSource(f"{REFUSED} {shown}: {why}")
    literal = literal_address(host)
    if literal is not None:
        return [str(literal)]
    found = getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        why = address_refusal(address, policy)
        if why:
            raise UnsafeSource(f"{REFUSED} {shown}: {host} resolves to {address}, {why}")
        if str(address) not in addresses:
            addresses.append(str(address))
    return addresses


getaddrinfo = socket.getaddrinfo  # the resolver (a test points it at a fixed table)


def address_refusal(address: IPAddress, policy: SourcePolicy) -> str | None:
    """What kind of non-public address this is, or None for a public (or allowed) one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = (
            address.ipv4_mapped
            or address.sixtofour
            or (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64 else None)
        )
        if embedded is not None:
            why = address_refusal(embedded, policy)
            return f"{why} (as {embedded} inside IPv6)" if why else None
    if policy.allows(address):
        return None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.version == 4 and address in CGNAT, "carrier-grade NAT (shared) space"),
        (address.version == 6 and address in UNIQUE_LOCAL, "unique-local"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    return next((label for hit, label in checks if hit), None)


def _is_loopback_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name in LOOPBACK_HOSTS or name.endswith(".localhost"):
        return True
    address = literal_address(name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback
