"""The layout holds at run time: what importing the workflow code loads.

``make check`` runs import-linter on the static layering (pyproject.toml
``[tool.importlinter]``: entry points over workflows over activities over core, core's
packages in their order, no cycle inside a package). This checks what the static view
cannot: the workflow worker's sandbox imports the workflow modules, and through the
activity classes they call by reference, every module those import at load time.
Heavy libraries are loaded where they run, so none of them may come along.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_MODULES = ("workflows.video", "workflows.batch", "workflows.export", "workflows.manifest")
# ML, signal-processing, download and storage libraries: loaded by the activities that
# use them, when they run (numpy alone comes along: the activities' checkpoint types)
NOT_IN_WORKFLOW_CODE = {
    "torch",
    "scipy",
    "soundfile",
    "sklearn",
    "torchaudio",
    "pyannote",
    "onnxruntime",
    "silero_vad",
    "yt_dlp",
    "requests",
    "boto3",
    "botocore",
    "s3transfer",
}


def test_importing_the_workflow_code_loads_no_ml_download_or_storage_library() -> None:
    code = f"import json, sys; import {', '.join(WORKFLOW_MODULES)}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert {"temporalio", "workflows", "activities", "core"} <= loaded  # it did import them
    assert not loaded & NOT_IN_WORKFLOW_CODE


def test_the_default_backend_is_the_chunked_kind_the_diarize_activity_checkpoints() -> None:
    from core.analysis.diarization import ChunkedDiarization
    from core.analysis.diarization.pretrained import PretrainedDiarization

    assert isinstance(PretrainedDiarization(), ChunkedDiarization)
