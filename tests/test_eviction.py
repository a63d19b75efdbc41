"""Eviction notices: parsed from the real formats, and the watcher drains on one.

The metadata endpoint is a real HTTP server on 127.0.0.1 answering like Azure's
Scheduled Events; only its address differs from production.
"""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from workers.eviction import notice_in, watch


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """A metadata server on 127.0.0.1, and its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_azure_and_aws_notices():
    preempt = {"Events": [{"EventType": "Preempt", "NotBefore": "Mon, 23 Nov 2026 10:00:00 GMT"}]}
    assert notice_in("azure", 200, json.dumps(preempt).encode()).startswith("Preempt")
    assert notice_in("azure", 200, json.dumps({"Events": [{"EventType": "Reboot"}]}).encode()) is None
    assert notice_in("azure", 200, b'{"Events": []}') is None
    for_other_vm = {"Events": [{"EventType": "Preempt", "Resources": ["vmss_7"], "NotBefore": "soon"}]}
    assert notice_in("azure", 200, json.dumps(for_other_vm).encode(), this_vm="vmss_3") is None
    assert notice_in("azure", 200, json.dumps(for_other_vm).encode(), this_vm="vmss_7").startswith("Preempt")
    assert notice_in("aws", 404, b"") is None
    assert "terminate" in notice_in("aws", 200, b'{"action": "terminate", "time": "2026-11-23T10:00:00Z"}')


def test_watcher_sets_stop_when_the_notice_appears():
    state = {"events": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            assert self.headers.get("Metadata") == "true"
            body = json.dumps({"Events": state["events"]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server, base = serve(Handler)
    url = f"{base}/metadata/scheduledevents"

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(watch("azure", url, stop, interval_s=0.1))
        await asyncio.sleep(0.5)
        assert not stop.is_set()  # no event yet: keep working
        state["events"] = [{"EventType": "Preempt", "NotBefore": "soon"}]
        await asyncio.wait_for(stop.wait(), timeout=5)
        await task

    try:
        asyncio.run(scenario())
    finally:
        server.shutdown()


def test_aws_watcher_polls_through_imdsv2_tokens_and_renews_a_refused_one():
    """Issue 30: current AWS instances require IMDSv2; plain GETs get 401, and the old
    watcher never saw a notice. A real HTTP server on 127.0.0.1 answers as IMDSv2 does:
    a token from PUT /latest/api/token, 401 for a GET without a valid one; it revokes
    the token once midway (as expiry does)."""
    state = {"token": "t1", "notice": False, "puts": 0, "gets_without_token": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            assert self.path == "/latest/api/token"
            assert int(self.headers["X-aws-ec2-metadata-token-ttl-seconds"]) > 0
            state["puts"] += 1
            self.answer(200, state["token"].encode())

        def do_GET(self):
            assert self.path == "/latest/meta-data/spot/instance-action"
            if self.headers.get("X-aws-ec2-metadata-token") != state["token"]:
                state["gets_without_token"] += 1
                return self.answer(401)
            if state["notice"]:
                return self.answer(200, b'{"action": "terminate", "time": "2026-12-07T10:00:00Z"}')
            self.answer(404)

    server, base = serve(Handler)
    url = f"{base}/latest/meta-data/spot/instance-action"

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(watch("aws", url, stop, interval_s=0.05))
        await asyncio.sleep(0.4)
        assert not stop.is_set() and state["puts"] == 1
        state["token"] = "t2"  # revoked: the next GET is refused, the one after renews it
        await asyncio.sleep(0.4)
        assert state["puts"] == 2 and not stop.is_set()
        state["notice"] = True
        await asyncio.wait_for(stop.wait(), timeout=5)
        await task

    try:
        asyncio.run(scenario())
    finally:
        server.shutdown()
    assert state["gets_without_token"] == 1  # only the GET with the revoked token
