"""The baseline of benchmarks.orchestration: five no-op activities in sequence.

Its own module, importing nothing else, so the workflow sandbox loads it as cheaply
as Temporal allows (the benchmark module itself imports the embedded stack)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="noop")
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        for step in range(5):
            await workflow.execute_activity("noop", step, start_to_close_timeout=timedelta(seconds=30))
        return n
