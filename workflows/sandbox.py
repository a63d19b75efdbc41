"""How workers run workflow code: in Temporal's sandbox, with the shared modules it
only reads loaded once per process.

The sandbox re-imports a workflow's module for every workflow it loads, so that runs
never share state. Modules imported under ``imports_passed_through`` are shared with
the host, except siblings inside this package: ``workflows`` itself is re-imported,
and so would its policies and search-attribute keys be, compiled from source on every
run when no bytecode is on disk (``PYTHONDONTWRITEBYTECODE``, set here and in most
images). Passing them through by name removed the largest per-workflow cost the
worker had (``python -m benchmarks.orchestration``).
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = ("core", "workflows.policies", "workflows.search_attributes")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The runner every worker (and benchmark) that hosts our workflows uses."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
