"""A worker set up wrong takes no task (issue 13, item 4): a pyannote model that does not
load is a ConfigurationError, non-retryable, and the worker exits 2 before polling."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from activities.errors import to_application_error
from core.analysis.diarization.pyannote_backend import PyannoteModelUnavailable
from core.contracts.errors import ConfigurationError, PipelineError
from devstack.stack import REPO_ROOT


def test_model_unavailable_is_a_non_retryable_configuration_error():
    error = PyannoteModelUnavailable("local pyannote model '/models/x' has no config.yaml")
    assert isinstance(error, ConfigurationError) and isinstance(error, PipelineError) and not error.retryable
    assert isinstance(error, ValueError), "callers that caught the old ValueError still do"
    application = to_application_error(error, rate_limit_backoff_s=120)
    assert application.type == "PyannoteModelUnavailable" and application.non_retryable


def test_a_worker_whose_pyannote_model_is_missing_exits_2_without_polling(tmp_path):
    """``python -m workers`` with PIPELINE_DIARIZATION_BACKEND=pyannote and a local model
    directory that does not exist: exit 2, one log line that says why, and no
    connection to Temporal or storage (listeners on loopback stand in for both and
    record that nothing came): it never polled a queue."""
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    for listener in listeners:
        listener.setblocking(False)
    temporal, storage = (listener.getsockname()[1] for listener in listeners)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_") and k != "HF_TOKEN"}
    env.update(
        PIPELINE_DIARIZATION_BACKEND="pyannote",
        PIPELINE_PYANNOTE_MODEL=str(tmp_path / "no-model-here"),
        PIPELINE_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal}",
        PIPELINE_S3_ENDPOINT_URL=f"http://127.0.0.1:{storage}",
        PIPELINE_WORK_DIR=str(tmp_path / "work"),
        PIPELINE_LOG_FORMAT="json",
        PYTHONPATH=str(REPO_ROOT),
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "workers"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 2, done.stdout + done.stderr
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert len(lines) == 1, lines
        record = json.loads(lines[0])
        assert record["event"] == "worker.backend_unavailable" and record["level"] == "error"
        assert "no-model-here" in record["error"] and "config.yaml" in record["error"]
        for listener in listeners:
            try:
                peer = listener.accept()
            except BlockingIOError:
                continue
            raise AssertionError(f"the worker connected ({peer[1]}): it should not get that far")
    finally:
        for listener in listeners:
            listener.close()
