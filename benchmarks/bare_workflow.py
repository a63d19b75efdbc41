"""The baselines of benchmarks.orchestration: five no-op activities in sequence.

``BareWorkflow`` runs them on its own task queue, where the SDK dispatches each one
eagerly (straight back to the worker that completed the workflow task, no matching
round trip); ``BareQueuedWorkflow`` runs them on another task queue, the way any stage
that must run on other machines (a GPU class, a rate-limited download pool) is
dispatched. Their own module, importing nothing else, so the sandbox loads it as
cheaply as Temporal allows."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

ACTIVITY_QUEUE_SUFFIX = "-bare-activities"
# Past the benchmark's end, as the pipeline's heartbeat timeout is made there: an
# activity's timeout timer fires (and costs the server) even after the activity
# finished, and would land in the round of whichever kind runs then.
TIMEOUT = timedelta(hours=1)


@activity.defn(name="noop")
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        for step in range(5):
            await workflow.execute_activity(noop, step, start_to_close_timeout=TIMEOUT)
        return n


@workflow.defn(name="BareQueuedWorkflow")
class BareQueuedWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        queue = workflow.info().task_queue + ACTIVITY_QUEUE_SUFFIX
        for step in range(5):
            await workflow.execute_activity(noop, step, task_queue=queue, start_to_close_timeout=TIMEOUT)
        return n
