"""Host names that are addresses, in every spelling the C resolver reads as one.

The source check (``core/sources/safety.py``) refuses a host by its address, so an address
has to be recognised however it is written: ``2852039166``, ``0xA9FEA9FE``,
``0251.0376.0251.0376`` and ``169.254.43518`` all mean 169.254.169.254 to the resolver
a fetcher ends up in, which answers them itself without asking DNS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an address if it is one in any spelling the C resolver takes (IPv6,
    dotted quad, and inet_aton's 1- to 3-part, octal and hex forms), else None."""
    host = host.strip("[]").split("%", 1)[0]
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host)
    return _inet_aton(host.rstrip("."))


_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """glibc inet_aton: 1-4 parts, each decimal, 0-prefixed octal or 0x hex; the last
    part fills the bytes that remain (``127.1`` is 127.0.0.1)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_PART.fullmatch(p) for p in parts):
        return None
    values = [_number(p) for p in parts]
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for i, value in enumerate(leading):
        number |= value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    return int(part, 8) if len(part) > 1 and part.startswith("0") else int(part)
