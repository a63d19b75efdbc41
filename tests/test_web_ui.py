"""The Temporal Web UI, in a real headless browser, lists a batch's videos when filtered
by BatchId and shows a video's history, and a video answers its status query (Debian's
chromium; no downloads)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from urllib.parse import quote

import pytest

from core.service.temporal import connect
from devstack.stack import Stack, StackConfig, free_port
from starter.batch import start_batch
from starter.status import wait_for_batch
from tests.conftest import status_query

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1400,900",
    "--virtual-time-budget=15000",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium missing: `make test` installs Debian's chromium when run as root"
    return found


def test_web_ui_lists_the_batch_and_status_answers(tmp_path_factory, media_dir):
    data = tmp_path_factory.mktemp("webui")
    stack = Stack(StackConfig.ephemeral(data, media_dir, ui_port=free_port()))
    stack.start()
    try:
        csv_path = data / "ui.csv"
        csv_path.write_text(
            "video_id,url\n" + "".join(f"ui-{i},{stack.media_url}/ep05-radio-segment.ogg\n" for i in range(2))
        )

        async def go():
            client = await connect(stack.settings())
            await start_batch(client, stack.settings(), csv_path, "ui-batch")
            await wait_for_batch(client, "ui-batch", timeout_s=300)
            return (await client.get_workflow_handle("video-ui-0").describe()).run_id

        run_id = asyncio.run(go())
        filter_ = quote('BatchId="ui-batch"')
        url = f"{stack.ui_url}/namespaces/default/workflows?query={filter_}"
        profile = data / "chromium-profile"
        dom = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "video-ui-0" in dom.stdout and "video-ui-1" in dom.stdout, dom.stdout[-2000:]
        assert "batch-ui-batch" in dom.stdout  # the BatchWorkflow carries the BatchId too
        screenshot = data / "web-ui-batch.png"
        subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=120,
        )
        assert screenshot.stat().st_size > 10_000
        print(f"\nWeb UI screenshot: {screenshot}")

        video_url = f"{stack.ui_url}/namespaces/default/workflows/video-ui-0/{run_id}/history"
        video_page = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", video_url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "commit_outputs" in video_page.stdout, "the commit shows as a local activity in the history"

        result = status_query(stack, "video-ui-0")
        assert result["stage"] == "completed" and result["batch_id"] == "ui-batch"
    finally:
        stack.stop()
