"""VideoWorkflow: one podcast video from its URL to committed outputs in storage.

    download ──> claim ──> diarize ─┬─> embed ───┬─> commit (metadata.json last)
                   │        music ───┴─> labels ──┘
                   └─ a copy of an earlier video's audio ──> commit as its Duplicate

The claim (activities/audio_claims.py) matches the download's fingerprint against every
earlier video's: a copy waits until its original commits (or claims again if the
original's workflow closed without committing) and commits a Duplicate pointing at it;
audio partly shared with an earlier video is processed, its shared turns marked.

Each stage's activity, queue and policy are its entry in ``workflows/stages.py``.
Workflow id ``video-{video_id}``: one run per video across every batch (a batch does
not start videos already committed in storage, and Temporal refuses a second run of a
running or completed id; committing an already committed video returns the committed
outcome and rewrites nothing). The download and the model stages run on the queue of
their kind (CPU download, GPU class for the models); the commit, a few storage calls,
runs as a local activity in the worker that runs the workflow.

An operator finds a video's stage in the ``status`` query and its current details (the
Web UI), both answered by the worker; search attributes carry only what lists filter
on: set at start, then the outcome (a failure ends the workflow as Failed with its typed
ErrorType). Each upsert is a history event and a visibility write, so the stage is not one.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.audio_claims import AudioClaimActivities
    from activities.commit import CommitActivities
    from activities.queues import QueueActivities
    from core.contracts import gpu_profiles, queues
    from core.contracts import search_attributes as sa
    from core.contracts.corpus import OriginalCheck, OriginalState
    from core.contracts.errors import (
        SOURCE_SIDE_ERROR_TYPES,
        GpuMemoryExhausted,
        HostMemoryExhausted,
        NoWorkerForClass,
    )
    from core.contracts.ids import SOURCE_TROUBLE_SIGNAL, STATUS_QUERY, VIDEO_DONE_SIGNAL, VIDEO_WORKFLOW
    from core.contracts.search_attributes import Outcome
    from core.contracts.video import (
        AudioClaim,
        AudioRef,
        ClaimRequest,
        CommitRequest,
        DuplicateCommitRequest,
        EmbedRequest,
        LabelRequest,
        LabelResult,
        ServedClassesRequest,
        SourceTrouble,
        StageSummary,
        StageTrail,
        VideoJob,
        VideoOutcome,
        VideoReport,
        VideoSpec,
        VideoState,
        VideoStatus,
    )
    from workflows import escalation, policies, stages
    from workflows.failures import failure_of
    from workflows.stages import In, Out, QueueKind, StageSpec

# workflow.patched ids: runs recorded before each change replay without it. Each is
# retired as docs/design.md ("Retiring a patch") says; the date is the guard's first commit.
COMMITTED_CHECK = "committed-check"  # 2026-11-29
SOURCE_WAITS = "source-waits"  # 2026-11-29
QUALITY_LABELS = "quality-labels"  # 2026-11-29
SERVED_ESCALATION = "served-escalation"  # 2026-12-06
COMMIT_NAME = "commit-name"  # 2026-12-07: the upload stage became the commit stage
SIBLING_MOVED = "sibling-moved"  # 2026-12-07: a stage out of memory follows its sibling's move
AUDIO_CLAIMS = "audio-claims"  # 2026-12-07: the claim after the download; Duplicates

# What makes a model stage move its video up the GPU ladder: the class's machines cannot
# hold it (the escalation's reason for each).
MEMORY_EXHAUSTED = {
    GpuMemoryExhausted.__name__: "out of GPU memory at batch 1",
    HostMemoryExhausted.__name__: "out of host memory",
}


@workflow.defn(name=VIDEO_WORKFLOW)
class VideoWorkflow:
    @workflow.init
    def __init__(self, job: VideoJob) -> None:
        self._job = job
        self._stage = "starting"
        self._running: set[str] = set()
        self._done: list[str] = []
        self._attempts: dict[str, int] = {}
        self._workers: dict[str, str] = {}
        self._seconds: dict[str, float] = {}
        self._error_type: str | None = None
        self._error_message: str | None = None
        self._failed_stage: str | None = None
        self._gpu_class = job.gpu_class
        self._escalations: list[str] = []
        self._queue = ""  # of the latest stage started
        self._audio_s: float | None = None  # known once downloaded

    @workflow.run
    async def run(self, job: VideoJob) -> VideoOutcome:
        spec = job.spec
        try:
            if workflow.patched(COMMITTED_CHECK):
                committed = await workflow.execute_local_activity_method(
                    CommitActivities.committed_video, spec, **policies.COMMIT.local_options()
                )
                if committed is not None:  # done by an earlier run: nothing to redo or rewrite
                    return await self._completed(committed)
            audio = await self._download(spec)
            self._audio_s = audio.duration_s  # the later stages' timeouts scale with it
            claim: AudioClaim | None = None
            if audio.fingerprint_key and workflow.patched(AUDIO_CLAIMS):  # runs before it had no key
                claim = await self._claim(audio)
                if claim.duplicate_of is not None:
                    duplicate = DuplicateCommitRequest(spec=spec, audio=audio, claim=claim, **self._trail())
                    return await self._completed(await self._stage_run(stages.COMMIT_DUPLICATE, duplicate))
            fitting = gpu_profiles.class_for_duration(self._gpu_class, audio.duration_s)
            if fitting != self._gpu_class:
                await self._move_up(fitting, f"{audio.duration_s / 3600:.1f} h of audio", must_move=False)

            diarization, music = await asyncio.gather(
                self._gpu_stage(stages.DIARIZE, audio), self._gpu_stage(stages.MUSIC, audio)
            )
            embed = self._gpu_stage(stages.EMBED, EmbedRequest(audio=audio, diarization=diarization))
            labels: LabelResult | None = None
            if workflow.patched(QUALITY_LABELS):
                label = LabelRequest(audio=audio, diarization=diarization, music=music)
                embeddings, labeled = await asyncio.gather(embed, self._gpu_stage(stages.LABELS, label))
                labels = labeled
            else:
                embeddings = await embed
            request = CommitRequest(
                spec=spec,
                audio=audio,
                diarization=diarization,
                embeddings=embeddings,
                music=music,
                labels=labels,
                claim=claim,
                **self._trail(),
            )
            commit = stages.COMMIT if workflow.patched(COMMIT_NAME) else stages.COMMIT_UNDER_OLD_NAME
            outcome = await self._stage_run(commit, request)
        except (ActivityError, ApplicationError) as err:  # a local activity's failure arrives unwrapped
            if is_cancelled_exception(err):  # cancelled by the operator (or its batch)
                self._stage = Outcome.CANCELLED
                self._show_details()
                workflow.upsert_search_attributes([sa.PIPELINE_STAGE.value_set(Outcome.CANCELLED)])
                raise
            failure = self._fail(err)
            await self._tell_batch(
                VIDEO_DONE_SIGNAL,
                VideoReport(video_id=spec.video_id, state=VideoState.FAILED, error_type=failure.type),
            )
            raise failure from err

        model_s = sum(r.seconds for r in (diarization, music, embeddings, labels) if r is not None)
        return await self._completed(outcome, gpu_s=model_s)

    async def _completed(self, outcome: VideoOutcome, gpu_s: float = 0.0) -> VideoOutcome:
        """Committed (or found committed): a Duplicate, or with its outputs."""
        spec = self._job.spec
        duplicate = outcome.state == VideoState.DUPLICATE
        self._stage = Outcome.DUPLICATE if duplicate else Outcome.COMPLETED
        self._show_details()
        attributes: list[SearchAttributeUpdate[Any]] = [
            sa.PIPELINE_STAGE.value_set(self._stage),
            sa.AUDIO_SECONDS.value_set(outcome.duration_s),
        ]
        if not duplicate:
            attributes += [
                sa.USABLE_PCT.value_set(outcome.usable_pct),
                sa.NUM_SPEAKERS.value_set(outcome.num_speakers),
            ]
        workflow.upsert_search_attributes(attributes)
        await self._tell_batch(
            VIDEO_DONE_SIGNAL,
            VideoReport(
                video_id=spec.video_id,
                state=outcome.state,
                audio_s=outcome.duration_s,
                gpu_class=self._gpu_class,
                gpu_s=gpu_s,
            ),
        )
        return outcome.model_copy(update=self._trail())

    async def _claim(self, audio: AudioRef) -> AudioClaim:
        """Claim the audio. A copy of an earlier video's waits for that original to commit;
        an original whose workflow closed without committing is released, and the audio
        claimed again (of the copies waiting on it, the first to claim is the original)."""
        request = ClaimRequest(
            video_id=audio.video_id, fingerprint_key=audio.fingerprint_key, duration_s=audio.duration_s
        )
        queue = queues.workflow_queue(self._job.queue_prefix)
        while True:
            claim = await self._stage_run(stages.CLAIM, request)
            if claim.duplicate_of is None:
                return claim
            check = OriginalCheck(video_id=claim.duplicate_of, duplicate=audio.video_id)
            wait_s, longest_s = policies.ORIGINAL_WAITS_S
            while True:
                state = await workflow.execute_activity_method(
                    AudioClaimActivities.original_state,
                    check,
                    task_queue=queue,
                    **policies.ORIGINAL_CHECK.options(),
                )
                if state != OriginalState.RUNNING:
                    break
                self._stage = f"waiting for its original {claim.duplicate_of}"
                self._show_details()
                await workflow.sleep(timedelta(seconds=wait_s))
                wait_s = min(2 * wait_s, longest_s)
            if state == OriginalState.COMMITTED:
                return claim
            await workflow.execute_activity_method(
                AudioClaimActivities.release_claim,
                check,
                task_queue=queues.claim_queue(self._job.queue_prefix),  # it reads and writes the log
                **policies.ORIGINAL_CHECK.options(),
            )
            self._done.remove(stages.CLAIM.stage)  # claimed again below

    def _trail(self) -> dict[str, Any]:
        """What the stages recorded, as the fields of a ``StageTrail``."""
        trail = StageTrail(
            gpu_class=self._gpu_class,
            stage_seconds=self._seconds,
            attempts=self._attempts,
            worker_ids=self._workers,
            escalations=self._escalations,
        )
        return dict(trail)  # copies: validation builds new containers

    async def _download(self, spec: VideoSpec) -> AudioRef:
        """The download; when the source pushes back (429, bot wall) the video tells its
        batch's breaker and waits a cool-down instead of spending its retries."""
        if not workflow.patched(SOURCE_WAITS):
            return await self._stage_run(stages.DOWNLOAD, spec)
        breaker = self._job.breaker
        for waits in range(breaker.video_waits + 1):
            try:
                return await self._stage_run(stages.DOWNLOAD, spec, policies.DOWNLOAD_SOURCE_AWARE)
            except ActivityError as err:
                cause = err.cause
                kind = cause.type if isinstance(cause, ApplicationError) else None
                if kind not in SOURCE_SIDE_ERROR_TYPES or waits == breaker.video_waits:
                    raise
            self._failed_stage = None
            self._stage = f"waiting for the source ({kind})"
            self._show_details()
            await self._tell_batch(
                SOURCE_TROUBLE_SIGNAL, SourceTrouble(video_id=spec.video_id, error_type=kind)
            )
            await workflow.sleep(timedelta(seconds=min(breaker.video_wait_s * 2**waits, breaker.cooldown_s)))
        raise AssertionError("unreachable: the last wait re-raises")

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> VideoStatus:
        return VideoStatus(
            video_id=self._job.spec.video_id,
            batch_id=self._job.spec.batch_id,
            stage=self._current_stage(),
            stages_done=list(self._done),
            progress=1.0
            if self._stage in (Outcome.COMPLETED, Outcome.DUPLICATE)
            else round(len(self._done) / len(stages.STAGES), 3),
            error_type=self._error_type,
            error_message=self._error_message,
            **self._trail(),
        )

    async def _stage_run(
        self, spec: StageSpec[In, Out], arg: In, policy: policies.ActivityPolicy | None = None
    ) -> Out:
        """Run one stage's activity (on its queue, or locally in this worker) under its
        policy (or ``policy``), and record its timing, attempt and worker."""
        name, policy = spec.stage, policy or spec.policy
        self._running.add(name)
        self._stage = name
        self._queue = stages.task_queue(spec.queue, self._job.queue_prefix, self._gpu_class)
        self._show_details()
        started = workflow.now()
        try:
            if spec.queue is QueueKind.LOCAL:
                result = await workflow.execute_local_activity_method(
                    spec.activity, arg, **policy.local_options()
                )
            else:
                result = await workflow.execute_activity_method(
                    spec.activity,
                    arg,
                    task_queue=self._queue,
                    schedule_to_start_timeout=timedelta(seconds=self._job.queue_timeout_s),
                    **policy.options(
                        heartbeat=timedelta(seconds=self._job.heartbeat_timeout_s), audio_s=self._audio_s
                    ),
                )
        except (ActivityError, ApplicationError):
            self._failed_stage = self._failed_stage or name
            raise
        finally:
            self._running.discard(name)
        self._seconds[name] = round((workflow.now() - started).total_seconds(), 3)
        self._done.append(name)
        self._show_details()
        if isinstance(result, AudioRef | AudioClaim | StageSummary):  # the stage's attempt and worker
            self._attempts[name] = result.attempt
            self._workers[name] = result.worker_id
        return result

    def _current_stage(self) -> str:
        return "+".join(sorted(self._running)) if self._running else self._stage

    def _show_details(self) -> None:
        """The Web UI's "current details" of this video (served by the worker)."""
        done = ", ".join(self._done) or "nothing yet"
        workflow.set_current_details(f"**{self._current_stage()}** on `{self._gpu_class}` (done: {done})")

    async def _gpu_stage(self, spec: StageSpec[In, Out], arg: In) -> Out:
        """A model stage on the queue of the video's GPU class. If the class cannot hold
        it (out of GPU or host memory), move the video to the next larger class and run
        it there; if a stage beside it already moved the video, run it where it went."""
        while True:
            ran_on = self._gpu_class
            try:
                return await self._stage_run(spec, arg)
            except ActivityError as err:
                cause = err.cause
                if not (isinstance(cause, ApplicationError) and cause.type in MEMORY_EXHAUSTED):
                    raise
                if self._gpu_class != ran_on and workflow.patched(SIBLING_MOVED):
                    continue
                bigger = gpu_profiles.next_class(self._gpu_class)
                if not bigger:
                    raise
                self._failed_stage = None
                await self._move_up(bigger, f"{spec.stage}: {MEMORY_EXHAUSTED[cause.type]}", must_move=True)

    async def _move_up(self, wanted: str, reason: str, must_move: bool) -> None:
        """Escalate towards ``wanted``, but only to a class some worker serves now
        (workflows/escalation.py); none that will do: NoWorkerForClass at once."""
        target: str | None = wanted
        if workflow.patched(SERVED_ESCALATION):
            served = await workflow.execute_activity_method(
                QueueActivities.served_gpu_classes,
                ServedClassesRequest(
                    queue_prefix=self._job.queue_prefix, classes=gpu_profiles.classes_above(self._gpu_class)
                ),
                task_queue=queues.workflow_queue(self._job.queue_prefix),
                **policies.QUEUE_CHECK.options(),
            )
            target = escalation.choose_class(self._gpu_class, wanted, served, self._job.escalation, must_move)
        if target is None:
            self._failed_stage = "escalation"
            raise ApplicationError(
                f"{reason} on {self._gpu_class}; no worker serves {wanted} or a class that would do",
                type=NoWorkerForClass.__name__,
                non_retryable=True,
            )
        self._escalate(target, reason)

    def _escalate(self, bigger: str, reason: str) -> None:
        if self._gpu_class == bigger:
            return
        self._escalations.append(f"{self._gpu_class}->{bigger}: {reason}")
        workflow.logger.warning("escalating %s to %s (%s)", self._job.spec.video_id, bigger, reason)
        self._gpu_class = bigger
        workflow.upsert_search_attributes([sa.GPU_CLASS.value_set(bigger)])

    def _fail(self, err: ActivityError | ApplicationError) -> ApplicationError:
        error_type, message = failure_of(err, self._job.queue_timeout_s, self._queue)
        self._error_type = error_type
        self._error_message = f"{self._failed_stage or self._stage}: {message}"
        self._stage = Outcome.FAILED
        self._show_details()
        workflow.upsert_search_attributes(
            [sa.ERROR_TYPE.value_set(error_type), sa.PIPELINE_STAGE.value_set(Outcome.FAILED)]
        )
        return ApplicationError(self._error_message, type=error_type, non_retryable=True)

    async def _tell_batch(self, signal: str, arg: Any) -> None:
        """Signal the batch that started this video, if any. Addressed by workflow id
        only, so it reaches the batch's current run after continue-as-new."""
        parent = workflow.info().parent
        if parent is None:
            return
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(signal, arg)
        except Exception as exc:  # the batch was cancelled or finished: nothing to tell
            workflow.logger.info("could not tell batch %s %s: %s", parent.workflow_id, signal, exc)
