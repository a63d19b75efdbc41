"""The network guard: every connection and redirect yt-dlp makes goes to an address
checked by core/sources/safety.py.

A CSV row names any URL, and whatever answers it may redirect anywhere (and name the
media and fragment URLs): unguarded, yt-dlp would read cloud metadata, cluster-internal
services and the worker's own ports. yt-dlp opens every connection of a download (the
page, each redirect, the media, each fragment) through its request handlers.
install_network_guard() makes the only handler that reaches the network one that
checks before connecting:
- each request's URL and each redirect target by what it says (core/sources/safety.check_url):
  a redirect to a refused host ends there, before any connection to it;
- each new connection by what its host resolves to: it connects to exactly the
  addresses it checked (no second DNS answer reaches a socket);
- downloaders that hand the URL to another program (ffmpeg, rtmpdump, aria2c...) are
  refused, since those would connect unchecked.
A refusal is a RequestError (yt-dlp re-raises those instead of trying another
handler) whose message carries safety.REFUSED: it ends as UnsafeSource
(core/sources/errors.py). yt-dlp's own messages go through its ``logger`` option,
URLs redacted (core/sources/download.py, ``YtdlpLog``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any, NoReturn, cast

import yt_dlp

from core.contracts.errors import UnsafeSource
from core.sources import safety


class _Refused(yt_dlp.networking.exceptions.RequestError):  # type: ignore[misc]  # yt-dlp is untyped
    """A source refused inside yt-dlp's networking (message: UnsafeSource's)."""


def _checked(url: str, resolve: bool) -> None:
    try:
        safety.check_url(url, safety.current_policy(), resolve=resolve)
    except UnsafeSource as exc:
        raise _Refused(str(exc)) from None


_opened = threading.local()  # the sockets this thread's guarded connections opened


@contextlib.contextmanager
def sockets_opened() -> Iterator[list[socket.socket]]:
    """A duplicate of every socket the calling thread opens through the guard inside
    the block is appended to the yielded list: a watchdog on another thread can shut
    them down, which ends a read blocked on a source that went quiet (a socket timeout
    does not: one byte every few seconds keeps it from firing). Duplicates, because TLS
    takes the original's descriptor over; they are closed when the block ends."""
    sockets: list[socket.socket] = []
    _opened.sockets = sockets
    try:
        yield sockets
    finally:
        _opened.sockets = None
        for sock in sockets:
            sock.close()


def _note_opened(sock: socket.socket) -> socket.socket:
    sockets = getattr(_opened, "sockets", None)
    if sockets is not None:
        sockets.append(sock.dup())
    return sock


def shut_down(sockets: list[socket.socket]) -> None:
    """End every transfer on these sockets now: a blocked read returns at once."""
    for sock in list(sockets):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def install_network_guard() -> None:
    """Idempotent; ``fetch_audio`` (core/sources/download.py) runs it before its first
    download, so every download in the process is guarded."""
    from urllib.parse import urljoin

    import requests
    import urllib3
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.util.connection import create_connection
    from yt_dlp.downloader.external import ExternalFD
    from yt_dlp.downloader.rtmp import RtmpFD
    from yt_dlp.networking._requests import RequestsRH
    from yt_dlp.networking._urllib import UrllibRH
    from yt_dlp.networking.common import _REQUEST_HANDLERS

    if getattr(_REQUEST_HANDLERS.get("Requests"), "_pipeline_guard", False):
        return

    class CheckedConnection(urllib3.connection.HTTPConnection):
        """Connects only to the addresses of its host that the policy allows (listed first,
        before urllib3's HTTP or HTTPS class, in the two classes below)."""

        def _new_conn(self) -> socket.socket:
            if self.proxy is not None:  # the operator's proxy; the URL was checked by name
                return _note_opened(super()._new_conn())
            try:
                addresses = safety.resolve_checked(self._dns_host, self.port, safety.current_policy())
            except UnsafeSource as exc:
                raise _Refused(str(exc)) from None
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc
            error: OSError | None = None
            for address in addresses:
                try:
                    return _note_opened(
                        create_connection(
                            (address, self.port),
                            self.timeout,
                            source_address=self.source_address,
                            socket_options=self.socket_options,
                        )
                    )
                except TimeoutError as exc:
                    raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
                except OSError as exc:
                    error = exc
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}")

    class CheckedHTTPConnection(CheckedConnection, urllib3.connection.HTTPConnection):
        pass

    class CheckedHTTPSConnection(CheckedConnection, urllib3.connection.HTTPSConnection):
        pass

    class CheckedHTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = CheckedHTTPConnection

    class CheckedHTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = CheckedHTTPSConnection

    def check_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """A requests response hook: it runs on every answer, before a redirect is followed."""
        if response.is_redirect:
            target = urljoin(response.url, response.headers["location"])  # requests.compat's urljoin
            _checked(target, resolve=True)
        return response

    class CheckedRequestsRH(RequestsRH):  # type: ignore[misc]  # yt-dlp is untyped
        RH_KEY = "Requests"
        _pipeline_guard = True

        def _create_instance(self, *args: Any, **kwargs: Any) -> requests.Session:
            session: requests.Session = super()._create_instance(*args, **kwargs)
            pools = {"http": CheckedHTTPPool, "https": CheckedHTTPSPool}
            for adapter in session.adapters.values():
                # yt-dlp mounts its own HTTPAdapter subclass
                cast(requests.adapters.HTTPAdapter, adapter).poolmanager.pool_classes_by_scheme = pools
            session.hooks["response"].append(check_redirect)
            return session

        def _send(self, request: Any) -> Any:  # yt-dlp's Request and Response
            _checked(request.url, resolve=bool(self._get_proxies(request)))
            return super()._send(request)

    class DataOnlyUrllibRH(UrllibRH):  # type: ignore[misc]  # yt-dlp is untyped
        """yt-dlp's urllib handler for data: URLs only: it has no connection hook, so it
        must never reach the network (nor file: URLs)."""

        RH_KEY = "Urllib"
        _SUPPORTED_URL_SCHEMES = ("data",)

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**{**kwargs, "enable_file_urls": False})
            self._SUPPORTED_URL_SCHEMES = ("data",)

    def refuse_external(self: object, filename: str, info_dict: dict[str, Any]) -> NoReturn:
        protocol = info_dict.get("protocol") or "stream"
        raise _Refused(
            f"{safety.REFUSED}: its {protocol} format would be fetched by {type(self).__name__}, "
            "outside the pipeline's address checks"
        )

    _REQUEST_HANDLERS.clear()  # a handler without these checks must not be chosen
    _REQUEST_HANDLERS.update({"Requests": CheckedRequestsRH, "Urllib": DataOnlyUrllibRH})
    ExternalFD.real_download = refuse_external
    RtmpFD.real_download = refuse_external
