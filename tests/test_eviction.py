"""Eviction notices: parsed from the real formats, and the watcher drains on one.

The metadata endpoint is a real HTTP server on 127.0.0.1 answering like Azure's
Scheduled Events; only its address differs from production.
"""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from workers.eviction import notice_in, watch


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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metadata/scheduledevents"

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
