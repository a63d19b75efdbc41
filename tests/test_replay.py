"""Workers can take new code while videos are in flight: the current workflow code
must replay the histories recorded by the code that started them (tests/histories/,
written by ``python -m tests.record_histories``, one folder per recording). A change
that breaks this goes behind ``workflow.patched(...)`` until no run of the old code is
left; then that code's folder goes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.batch import BatchWorkflow
from workflows.export import ExportWorkflow
from workflows.manifest import ManifestWorkflow
from workflows.sandbox import workflow_runner
from workflows.video import VideoWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))


def _workflow_type(path: Path) -> str:
    first = json.loads(path.read_text())["events"][0]
    return first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]


def test_histories_cover_every_workflow_and_outcome():
    newest = max(p.parent for p in HISTORIES)
    names = {p.stem for p in HISTORIES if p.parent == newest}
    assert {"video_completed", "video_failed", "manifest"} <= names, names
    assert sum(n.startswith("batch_run") for n in names) >= 2, "a batch that continued as new"
    assert sum(n.startswith("export_run") for n in names) >= 2, "an export that continued as new"
    assert {_workflow_type(p) for p in HISTORIES if p.parent == newest} == {
        "VideoWorkflow",
        "BatchWorkflow",
        "ManifestWorkflow",
        "ExportWorkflow",
    }


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_current_code_replays_recorded_history(path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[VideoWorkflow, BatchWorkflow, ManifestWorkflow, ExportWorkflow],
        workflow_runner=workflow_runner(),
    )
    result = asyncio.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"
