"""One log stream: structlog's events and the libraries' stdlib records in one format.

Why (issue 30): in JSON mode, temporalio's own records, tracebacks included, came out as
plain text between the JSON lines, and no line said which logger wrote it. A log stack
parses every line or none.
"""

from __future__ import annotations

import json

from tests.conftest import run_cli

SCRIPT = """
import logging, structlog
from core.service.logs import configure_logging
configure_logging("INFO", "json")
structlog.get_logger("worker").info("worker.started", slots=2)
logging.getLogger("temporalio.worker._activity").warning("Failed polling %s", "activity task")
logging.getLogger("botocore.credentials").debug("below the level: not written")
try:
    token = "hunter2-token"
    raise RuntimeError("storage said no")
except RuntimeError:
    logging.getLogger("temporalio.activity").exception("Completing activity as failed")
    structlog.get_logger("activity").exception("stage.failed", video_id="v1")
"""


def test_every_line_is_json_naming_its_logger_with_structured_tracebacks():
    result = run_cli("-c", SCRIPT, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    assert [(r["logger"], r["event"], r["level"]) for r in records] == [
        ("worker", "worker.started", "info"),
        ("temporalio.worker._activity", "Failed polling activity task", "warning"),
        ("temporalio.activity", "Completing activity as failed", "error"),
        ("activity", "stage.failed", "error"),
    ]
    assert records[0]["slots"] == 2 and records[3]["video_id"] == "v1"
    for record in records[2:]:
        (exception,) = record["exception"]
        assert exception["exc_type"] == "RuntimeError" and exception["exc_value"] == "storage said no"
        assert exception["frames"] and all("locals" not in frame for frame in exception["frames"])
    assert "hunter2" not in result.stderr  # a frame's local variables never reach the log
    assert all(r["timestamp"].endswith("Z") for r in records)
