"""Credentials and query tokens in a source URL go through the whole pipeline (real
Temporal, storage, worker process, starter CLI) and come out of none of what it stores
or logs: metadata.json, the day's manifest, the worker's log, the starter's output, the
failure a bad row ends with. The original URL stays where it is needed to download (the
batch input, the workflow payload), and a second run of the same batch finds the video
committed from the same URL (compared by the original's sha256), not a conflict.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.contracts.urls import redact_url, url_sha256
from core.store.objects import ObjectStore
from tests.conftest import run_cli, start_cli

pytestmark = pytest.mark.integration

SECRETS = ("hunter2", "t0k3n", "s1gn4ture")


@pytest.fixture(scope="module", autouse=True)
def secrets_worker(stack):
    """The module's worker on the session's servers (conftest ``stack``)."""
    stack.start_worker("secrets-worker")


def test_a_url_with_credentials_and_tokens_leaves_no_trace(stack, tmp_path):
    with_secrets = stack.media_url.replace("http://", "http://podcaster:hunter2@")
    good = f"{with_secrets}/ep03-three-voices.ogg?token=t0k3n&sig=s1gn4ture"
    bad = f"{with_secrets}/no-such-episode.ogg?token=t0k3n"
    csv_path = tmp_path / "secrets.csv"
    csv_path.write_text(f"video_id,url\nsecret-good,{good}\nsecret-bad,{bad}\n")
    started = start_cli(
        str(csv_path),
        "secrets",
        "--wait",
        env=stack.env(),
        timeout=600,
    )
    assert "summary: 1 completed, 1 failed" in started.stdout, started.stdout + started.stderr
    status = run_cli("-m", "starter", "status", "--batch-id", "secrets", "--videos", env=stack.env())
    assert "VideoUnavailable" in status.stdout, status.stdout
    today = datetime.now(UTC).date().isoformat()
    manifest = run_cli("-m", "starter", "manifest", "--date", today, env=stack.env(), timeout=120)
    assert manifest.returncode == 0, manifest.stdout + manifest.stderr

    store = ObjectStore(stack.settings())
    metadata = store.get_bytes(store.keys("secret-good").metadata).decode()
    source = json.loads(metadata)["source"]
    assert source["url"] == redact_url(good) and source["url_sha256"] == url_sha256(good)
    lines = store.get_bytes(f"manifests/manifest_{today}.jsonl").decode()
    assert redact_url(good) in lines
    logs = "\n".join(p.read_text(errors="replace") for p in stack.logs.glob("secrets-worker*.log"))
    assert "secret-good" in logs and "secret-bad" in logs, "the worker's log covers both videos"

    again = start_cli(
        str(csv_path),
        "secrets-again",
        "--wait",
        env=stack.env(),
        timeout=600,
    )
    assert "VideoIdConflict" not in again.stdout + again.stderr, again.stdout
    assert json.loads(store.get_bytes(store.keys("secret-good").metadata)) == json.loads(metadata)

    outputs = {
        "metadata.json": metadata,
        "manifest": lines,
        "worker log": logs,
        "starter": started.stdout + started.stderr + again.stdout + again.stderr,
        "status": status.stdout + status.stderr,
    }
    for secret in SECRETS:
        for where, text in outputs.items():
            assert secret not in text, f"{secret!r} in the {where}"
