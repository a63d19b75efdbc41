"""BatchWorkflow: a CSV of videos, at most ``window`` of them in flight at any time.

    read page ──> start children video-{id} (ABANDON) ──> wait for ``video_done`` signals
        ^                                                          │
        └────────── continue-as-new when history grows ────────────┘

The rows live in storage and are read a page at a time by an activity, so a batch of
340,000 videos never sits in a workflow payload. Children are started with parent
close policy ABANDON and report back by signal to the batch's workflow id, so they
survive the batch's continue-as-new and the sliding window carries over (the pattern
of Temporal's sliding-window batch sample). A video already committed in storage (by
any batch) is not started again (``already_completed``, found when its page is read);
one running in another batch, or completed in Temporal's history, counts as skipped.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.batch import BatchActivities
    from core.contracts import queues
    from core.contracts import search_attributes as sa
    from core.contracts.batch import (
        MAX_RECENT,
        RATE_WINDOW_S,
        BatchJob,
        BatchPageRequest,
        BatchProgress,
        BatchState,
        ClassUsage,
        progress_of,
    )
    from core.contracts.ids import (
        BATCH_WORKFLOW,
        PAUSE_SIGNAL,
        PROGRESS_QUERY,
        RESUME_SIGNAL,
        SOURCE_TROUBLE_SIGNAL,
        VIDEO_DONE_SIGNAL,
        video_workflow_id,
    )
    from core.contracts.search_attributes import Outcome
    from core.contracts.video import SourceTrouble, VideoJob, VideoReport, VideoSpec, VideoState
    from core.service import metrics
    from workflows import policies
    from workflows.video import VideoWorkflow


@workflow.defn(name=BATCH_WORKFLOW)
class BatchWorkflow:
    @workflow.init
    def __init__(self, job: BatchJob) -> None:
        # state exists before any signal handler runs: a pause sent right after the
        # start (or between two runs of continue-as-new) is never lost
        self._job = job
        self._s = job.state or BatchState(started_at=workflow.now().timestamp())

    @workflow.run
    async def run(self, job: BatchJob) -> BatchProgress:
        s = self._s
        try:
            await self._loop()
        except asyncio.CancelledError:
            workflow.upsert_search_attributes([sa.PIPELINE_STAGE.value_set(Outcome.CANCELLED)])
            await cancel_children(list(s.in_flight))
            raise
        return self.progress()

    async def _loop(self) -> None:
        job, s = self._job, self._s
        while True:
            armed = s.breaker_until  # a trip while waiting re-arms the wait with the cool-down's end
            try:
                await workflow.wait_condition(
                    lambda armed=armed: (  # type: ignore[misc]  # bound now: the loop rebinds it
                        (not self._held() and len(s.in_flight) < job.window and not self._exhausted())
                        or self._finished()
                        or self._should_continue_as_new()
                        or s.breaker_until != armed
                    ),
                    timeout=timedelta(seconds=self._wait_s()),
                )
            except TimeoutError:
                if not self._cooled_down():
                    await self._reconcile()
                continue
            finally:
                if self._cooled_down():
                    self._release_breaker()  # the cool-down is over: start videos again
            if self._finished():
                workflow.upsert_search_attributes([sa.PIPELINE_STAGE.value_set(Outcome.COMPLETED)])
                return
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                s.runs += 1
                workflow.continue_as_new(job.model_copy(update={"state": s}))
            if not s.pending and not s.eof:
                await self._read_page()
            while s.pending and len(s.in_flight) < job.window and not self._held():
                await self._start(s.pending.pop(0))

    # --- operator controls ----------------------------------------------------------
    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        self._s.paused = True
        workflow.upsert_search_attributes([sa.PIPELINE_STAGE.value_set(Outcome.PAUSED)])

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        """Also lets go of the source breaker: the operator knows the source is back."""
        self._s.paused = False
        self._release_breaker()
        workflow.upsert_search_attributes([sa.PIPELINE_STAGE.value_set(Outcome.RUNNING)])

    @workflow.signal(name=SOURCE_TROUBLE_SIGNAL)
    def source_trouble(self, trouble: SourceTrouble) -> None:
        self._source_outcome(trouble=True, error_type=trouble.error_type)

    # --- the source breaker ---------------------------------------------------------
    def _held(self) -> bool:
        """Paused by the operator, or by the source breaker until its cool-down ends."""
        return self._s.paused or workflow.now().timestamp() < self._s.breaker_until

    def _cooled_down(self) -> bool:
        return bool(self._s.breaker_until) and workflow.now().timestamp() >= self._s.breaker_until

    def _wait_s(self) -> float:
        """Wake for the reconcile, or when the breaker's cool-down ends, whichever is first."""
        left = self._s.breaker_until - workflow.now().timestamp()
        return max(1.0, min(self._job.reconcile_s, left)) if left > 0 else self._job.reconcile_s

    def _source_outcome(self, trouble: bool, error_type: str = "") -> None:
        """One download outcome (a completion, or a source-side error); trips the breaker
        when the recent source-side share reaches the threshold."""
        s, breaker = self._s, self._job.breaker
        now = workflow.now().timestamp()
        recent = [(t, bad) for t, bad in s.source_outcomes if now - t <= breaker.window_s] + [(now, trouble)]
        s.source_outcomes = recent[-MAX_RECENT:]
        if not trouble or now < s.breaker_until:
            return
        bad = sum(1 for _, b in s.source_outcomes if b)
        total = len(s.source_outcomes)
        if total < breaker.min_samples or bad / total < breaker.threshold:
            return
        s.breaker_until = now + breaker.cooldown_s
        s.breaker_trips += 1
        s.breaker_reason = (
            f"source pushed back on {bad} of the last {total} downloads (latest {error_type}): "
            f"no new video for {breaker.cooldown_s:.0f} s; `starter resume` to go on now"
        )
        workflow.logger.warning("batch %s: %s", self._job.batch_id, s.breaker_reason)
        workflow.upsert_search_attributes([sa.PIPELINE_STAGE.value_set(Outcome.PAUSED_SOURCE)])
        workflow.metric_meter().create_counter(
            metrics.BREAKER_TRIPS, "times a batch paused itself because the source pushed back"
        ).add(1, {"batch_id": self._job.batch_id})

    def _release_breaker(self) -> None:
        s = self._s
        if not s.breaker_until:
            return
        s.breaker_until = 0.0
        s.breaker_reason = ""
        s.source_outcomes = []
        if not s.paused:
            workflow.upsert_search_attributes([sa.PIPELINE_STAGE.value_set(Outcome.RUNNING)])

    async def _reconcile(self) -> None:
        """Videos that ended without reporting (terminated or timed out by hand) would
        hold their window slot forever: ask Temporal which in-flight videos are closed."""
        if not self._s.in_flight:
            return
        reports = await workflow.execute_activity_method(
            BatchActivities.closed_videos,
            list(self._s.in_flight),
            task_queue=queues.workflow_queue(self._job.queue_prefix),
            **policies.BATCH_RECONCILE.options(),
        )
        for report in reports:
            self.video_done(report)

    @workflow.signal(name=VIDEO_DONE_SIGNAL)
    def video_done(self, report: VideoReport) -> None:
        s = self._s
        if report.video_id not in s.in_flight:
            return  # a video of another run of this batch, or reported twice
        s.in_flight.remove(report.video_id)
        now = workflow.now().timestamp()
        if report.state == VideoState.FAILED:
            s.failed += 1
            key = report.error_type or "unknown"
            s.failed_by_error[key] = s.failed_by_error.get(key, 0) + 1
            return
        self._source_outcome(trouble=False)
        if report.state == VideoState.DUPLICATE:
            s.duplicates += 1
            s.duplicate_audio_s += report.audio_s
            return
        s.completed += 1
        s.audio_s += report.audio_s
        usage = s.per_class.get(report.gpu_class, ClassUsage())
        s.per_class[report.gpu_class] = ClassUsage(
            videos=usage.videos + 1, audio_s=usage.audio_s + report.audio_s, gpu_s=usage.gpu_s + report.gpu_s
        )
        recent = [(t, a) for t, a in s.recent if now - t <= RATE_WINDOW_S] + [(now, report.audio_s)]
        s.recent = recent[-MAX_RECENT:]  # carried state: bounded (core.contracts.batch.batch_payload_bound)

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> BatchProgress:
        return progress_of(self._job, self._s, workflow.now().timestamp())

    # --- steps ----------------------------------------------------------------------
    async def _read_page(self) -> None:
        job, s = self._job, self._s
        request = BatchPageRequest(
            input_key=job.input_key,
            offset=s.next_offset,
            max_rows=job.page_size,
            batch_id=job.batch_id,
            skip_committed=not job.dry_run,
        )
        page = await workflow.execute_activity_method(
            BatchActivities.read_batch_page,
            request,
            task_queue=queues.workflow_queue(job.queue_prefix),
            **policies.BATCH_STORAGE.options(),  # outlives a long storage outage
        )
        s.pending.extend(page.specs)
        s.conflicts.extend(page.conflicts)
        s.already_completed += len(page.committed)
        s.next_offset = page.next_offset
        s.eof = page.eof

    async def _start(self, spec: VideoSpec) -> None:
        job, s = self._job, self._s
        if job.dry_run:
            s.started += 1
            s.skipped += 1  # counted, never run
            return
        video_job = VideoJob(
            spec=spec,
            queue_prefix=job.queue_prefix,
            gpu_class=job.gpu_class,
            heartbeat_timeout_s=job.heartbeat_timeout_s,
            breaker=job.breaker,
            escalation=job.escalation,
        )
        # in flight before the start resolves: a video that ends at once can report in
        # the very activation that resolves its start, and signal handlers run first
        s.in_flight.append(spec.video_id)
        conflict = spec.video_id in s.conflicts
        if conflict:
            s.conflicts.remove(spec.video_id)
        try:
            await workflow.start_child_workflow(
                VideoWorkflow.run,
                video_job,
                id=video_workflow_id(spec.video_id),
                task_queue=queues.workflow_queue(job.queue_prefix),
                parent_close_policy=ParentClosePolicy.ABANDON,
                # a conflict runs again to fail typed; anything else never runs twice
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE
                if conflict
                else WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.BATCH_ID, job.batch_id),
                        SearchAttributePair(sa.VIDEO_ID, spec.video_id),
                        SearchAttributePair(sa.GPU_CLASS, video_job.gpu_class),
                        SearchAttributePair(sa.PIPELINE_STAGE, Outcome.RUNNING),  # then its outcome
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            if spec.video_id in s.in_flight:
                s.in_flight.remove(spec.video_id)  # its run reports to the batch that started it
            s.skipped += 1  # running elsewhere or completed: never twice
            return
        s.started += 1

    def _exhausted(self) -> bool:
        return self._s.eof and not self._s.pending

    def _finished(self) -> bool:
        return self._exhausted() and not self._s.in_flight

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self._job.max_events_per_run
        )


async def cancel_children(video_ids: list[str]) -> None:
    """Cancel running children (used when the batch itself is cancelled)."""
    await asyncio.gather(
        *(workflow.get_external_workflow_handle(video_workflow_id(v)).cancel() for v in video_ids),
        return_exceptions=True,
    )
