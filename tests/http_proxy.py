"""A forward HTTP proxy on 127.0.0.1 that demands credentials and records what it carried:
the operator's proxy, real enough for yt-dlp to go through. It forwards to loopback only."""

from __future__ import annotations

import base64
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class _Proxy(BaseHTTPRequestHandler):
    credentials = ""
    carried: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        if self.headers.get("Proxy-Authorization") != expected:
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        target = urlsplit(self.path)
        assert target.hostname == "127.0.0.1", "this proxy forwards to loopback only"
        self.carried.append(self.path)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in {"proxy-authorization", "proxy-connection"}
        }
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        conn.request("GET", target.path + (f"?{target.query}" if target.query else ""), headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        conn.close()

    do_HEAD = do_GET


class AuthProxy:
    def __init__(self, user: str, password: str):
        handler = type("Handler", (_Proxy,), {"credentials": f"{user}:{password}", "carried": []})
        self.carried: list[str] = handler.carried
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.port = self.httpd.server_address[1]

    def __enter__(self) -> AuthProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
