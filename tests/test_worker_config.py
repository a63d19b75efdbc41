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


def test_model_calls_use_the_threads_the_worker_gives_them() -> None:
    """core.analysis.threads: torch's pool and the onnxruntime sessions built after it
    take the worker's share, whether torch was imported before or after."""
    from core.analysis import threads

    assert threads.per_call(slots=threads.cores()) == 1
    assert threads.per_call(slots=1) == threads.cores()
    assert threads.per_call(slots=2, configured=3) == 3
    code = (
        "import torch; from core.analysis import threads, dnsmos; threads.use(1);"
        "a = torch.get_num_threads(); threads.use(2); b = torch.get_num_threads(); s = dnsmos.Dnsmos();"
        "print(a, b, s.session.get_session_options().intra_op_num_threads)"
    )
    before = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert before.stdout.split() == ["1", "2", "2"]
    code = "from core.analysis import threads; threads.use(1); import torch; print(torch.get_num_threads())"
    after = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert after.stdout.split() == ["1"]
