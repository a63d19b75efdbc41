"""How workers run workflow code: in Temporal's sandbox, with the shared modules it
only reads loaded once per process, and the workflow modules loaded from bytecode.

The sandbox re-imports a workflow's module for every workflow it loads, so that runs
never share state. Modules imported under ``imports_passed_through`` are shared with
the host, except siblings inside this package: ``workflows`` itself is re-imported,
and so would its policies, stage table and failure naming be. Each re-import compiles the
module from source when no bytecode is on disk (``PYTHONDONTWRITEBYTECODE``, set here
and in the images): ~3 ms of worker CPU per workflow for ``workflows/video.py``
(``python -m benchmarks.orchestration``). So the shared modules are passed through by
name, and the bytecode of the re-imported ones is written once when a worker starts
(the images also compile it at build time).
"""

from __future__ import annotations

import compileall
from pathlib import Path

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = ("core", "activities", "workflows.policies", "workflows.stages", "workflows.failures")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The runner every worker (and benchmark) that hosts our workflows uses."""
    write_bytecode(Path(__file__).parent)
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def write_bytecode(path: Path) -> None:
    """Compile a module or package to ``__pycache__`` if stale; a read-only install
    (compiled at build time) is left as it is."""
    try:
        if path.is_dir():
            compileall.compile_dir(path, maxlevels=0, quiet=2)
        else:
            compileall.compile_file(path, quiet=2)
    except OSError:
        pass
