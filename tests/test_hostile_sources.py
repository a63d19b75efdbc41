"""Hostile rows in a real batch: each fails typed within its bounds, the rows beside
them complete. Real stack, real worker; the hostility is the media server's (an
endless stream, a feed of fifty episodes, a 404)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.fleet import start_videos, wait_batch, worker

pytestmark = pytest.mark.integration


def test_hostile_rows_fail_typed_and_the_rows_beside_them_complete(stack, media_server):
    worker(stack, "hostile", "hostile", PIPELINE_MAX_DOWNLOAD_MB="16")
    rows = [
        ("endless", f"{media_server.url}/endless/ep03-three-voices.ogg"),
        ("feed", f"{media_server.url}/feed/50.xml"),
        ("good-1", f"{media_server.url}/ep05-radio-segment.ogg"),
        ("good-2", f"{media_server.url}/ep03-three-voices.ogg"),
    ]
    start_videos(stack, "hostile", "hostile", rows)
    counts = wait_batch(stack, "hostile", timeout_s=300)
    assert counts.by_status == {"Completed": 2, "Failed": 2}
    assert counts.failed_by_error == {"TooLarge": 1, "NotSingleVideo": 1}
    status = run_cli("-m", "starter", "status", "--batch-id", "hostile", "--videos", env=stack.env())
    assert "TooLarge" in status.stdout and "NotSingleVideo" in status.stdout, status.stdout
    assert stack.stop_process("hostile") == 0
