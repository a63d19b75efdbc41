"""A real HTTP server on 127.0.0.1 serving media files, plus paths that answer with a
chosen failure, so yt-dlp's real download path meets real HTTP errors.

This is fault injection at the network edge, not a mock: yt-dlp, its HTTP stack and
ffmpeg all run for real against it.

    /<file>                 the file from the served folder
    /status/<code>/<name>   answers <code> (404, 403, 429, 500, ...), or "challenge": the
                            403 page of a Cloudflare anti-bot challenge, as a site behind
                            one answers a client it suspects of being a bot;
                            <code>:<reason> sends that reason phrase (one that lies)
    /truncated/<file>       announces the full length, sends half, closes
    /flaky/<fault>/<n>/<file>  the first n requests get <fault> (a status code or
                            "truncated"), later ones the file: a transient failure
    /slow/<seconds>/<file>  the whole file, trickled over <seconds>: a healthy, slow source
    /endless/<file>         the file over and over, no length announced, never ending
    /drip/<bytes_per_s>/<file>  the file at that rate, length announced: a slow drip
    /trickle/<s_per_byte>/<file>  one byte every <s_per_byte> seconds, length announced:
                            each read waits for hours, and no socket timeout ever fires
    /feed/<n>.xml           an RSS feed of n episodes (enclosures /ep-<i>/<file>)
    /needs-cookie/<file>    403 unless the request carries the cookie session=COOKIE_VALUE
    /redirect/<target>      302 to the URL-encoded <target> (anywhere: the client decides)
    /then/<code>/<n>/<file> the first n requests get the file, later ones <code>: a page
                            that answers and media that does not (YouTube's passing 403s)

Every request path is appended to ``REQUESTS`` (tests count what was fetched).
"""

from __future__ import annotations

import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

_flaky_counts: dict[str, int] = {}
_flaky_lock = threading.Lock()
REQUESTS: list[str] = []
FEED_EPISODE = "ep03-three-voices.ogg"
COOKIE_VALUE = "operator-session-7f3a"
CHALLENGE_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body>Verifying you are human.</body></html>"
)


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _status(self) -> bool:
        REQUESTS.append(self.path)
        parts = self.path.strip("/").split("/")
        if parts[0] in {"endless", "drip", "trickle", "feed"} and self.command == "GET":
            try:
                return self._stream(parts)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up
                self.close_connection = True
                return True
        if parts[0] == "redirect" and len(parts) == 2:
            self.send_response(302)
            self.send_header("Location", unquote(parts[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        if parts[0] == "then" and len(parts) == 4:
            with _flaky_lock:
                seen = _flaky_counts.get(self.path, 0)
                _flaky_counts[self.path] = seen + 1
            if seen < int(parts[2]):
                self.path = "/" + parts[3]
                return False
            parts = ["status", parts[1], parts[3]]
        if parts[0] == "needs-cookie" and len(parts) == 2:
            if f"session={COOKIE_VALUE}" in (self.headers.get("Cookie") or ""):
                self.path = "/" + parts[1]
                return False
            parts = ["status", "403", parts[1]]
        if parts[0] == "flaky" and len(parts) == 4:
            with _flaky_lock:
                seen = _flaky_counts.get(self.path, 0)
                _flaky_counts[self.path] = seen + 1
            if seen >= int(parts[2]):
                self.path = "/" + parts[3]
                return False
            parts = ["truncated", parts[3]] if parts[1] == "truncated" else ["status", parts[1], parts[3]]
        if parts[0] == "status" and len(parts) >= 2 and parts[1] == "challenge":
            page = CHALLENGE_PAGE.encode()
            self.send_response(403)
            self.send_header("cf-mitigated", "challenge")
            self.send_header("Content-Type", "text/html; charset=UTF-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(page)
            return True
        if parts[0] == "status" and len(parts) >= 2:
            code, _, reason = parts[1].partition(":")
            self.send_response(int(code), unquote(reason) or None)
            self.send_header("Content-Length", "0")
            if code == "429":
                self.send_header("Retry-After", "120")
            self.end_headers()
            return True
        if parts[0] == "slow" and len(parts) == 3:
            data = (Path(self.directory) / parts[2]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                pieces = 50
                step = -(-len(data) // pieces)
                try:
                    for i in range(pieces):
                        self.wfile.write(data[i * step : (i + 1) * step])
                        self.wfile.flush()
                        time.sleep(float(parts[1]) / pieces)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: its business
                    self.close_connection = True
            return True
        if parts[0] == "truncated" and len(parts) == 2:
            data = (Path(self.directory) / parts[1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/ogg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
            self.close_connection = True
            return True
        return False

    def _stream(self, parts: list[str]) -> bool:
        if parts[0] == "feed" and len(parts) == 2:
            count = int(parts[1].removesuffix(".xml"))
            base = f"http://{self.headers['Host']}"
            items = "".join(
                f"<item><title>Episode {i}</title><guid>ep-{i}</guid>"
                f'<enclosure url="{base}/ep-{i}/{FEED_EPISODE}" type="audio/ogg" length="1"/></item>'
                for i in range(count)
            )
            body = (
                f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed</title>'
                f"<link>{base}</link><description>d</description>{items}</channel></rss>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return True
        if parts[0] == "endless" and len(parts) == 2:
            data = (Path(self.directory) / parts[1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/ogg")
            self.end_headers()
            while True:  # until the client hangs up
                self.wfile.write(data)
            return True
        if parts[0] == "drip" and len(parts) == 3:
            data = (Path(self.directory) / parts[2]).read_bytes()
            rate = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "audio/ogg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for i in range(0, len(data), max(rate // 10, 1)):
                self.wfile.write(data[i : i + max(rate // 10, 1)])
                self.wfile.flush()
                time.sleep(0.1)
            return True
        if parts[0] == "trickle" and len(parts) == 3:
            data = (Path(self.directory) / parts[2]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/ogg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(float(parts[1]))
            return True
        return False

    def do_GET(self) -> None:
        if not self._status():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._status():
            super().do_HEAD()


class MediaServer:
    def __init__(self, directory: Path):
        self.directory = directory
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(directory)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> MediaServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
