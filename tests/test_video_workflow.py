"""VideoWorkflow's own decisions, with stand-in activities: where a long episode runs.

Why: a 5-hour episode does not fit a T4's audio limit (core.contracts.gpu_profiles), so the
workflow moves it up the ladder right after the download, before any model stage,
but only to a class some worker serves. Running that for real takes hours of audio;
here the real VideoWorkflow runs on the session's Temporal server and the stand-in
activities report a 5-hour download, record which queue each model stage ran on and
which classes are served. The real activities are tested everywhere else.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError

from core.contracts import queues
from core.contracts.video import (
    AudioRef,
    CommitRequest,
    DiarizationResult,
    EmbeddingResult,
    EmbedRequest,
    Escalation,
    LabelRequest,
    LabelResult,
    MusicResult,
    ServedClassesRequest,
    VideoJob,
    VideoOutcome,
    VideoSpec,
    VideoState,
)
from core.service.temporal import connect
from tests.fleet import in_process_workers
from workflows.video import VideoWorkflow

HOURS_5 = 5 * 3600.0  # over a t4's 4 h (core.contracts.gpu_profiles), within an a10's 6 h


class StandIns:
    """Every activity VideoWorkflow calls, answering at once; model stages note their queue."""

    def __init__(self, served: list[str]) -> None:
        self.served = served
        self.queues: dict[str, str] = {}
        self.lock = threading.Lock()

    def _ran(self, stage: str) -> None:
        with self.lock:
            self.queues[stage] = activity.info().task_queue

    @activity.defn(name="committed_video")
    def committed_video(self, spec: VideoSpec) -> VideoOutcome | None:
        return None

    @activity.defn(name="download_audio")
    def download_audio(self, spec: VideoSpec) -> AudioRef:
        return AudioRef(
            video_id=spec.video_id, original_key="o.wav", analysis_key="a.wav", duration_s=HOURS_5, sha256="0"
        )

    @activity.defn(name="served_gpu_classes")
    def served_gpu_classes(self, request: ServedClassesRequest) -> list[str]:
        return [c for c in request.classes if c in self.served]

    @activity.defn(name="diarize_audio")
    def diarize_audio(self, audio: AudioRef) -> DiarizationResult:
        self._ran("diarize")
        return DiarizationResult(key="d", backend="stand-in", num_speakers=2, num_segments=2, speech_s=1.0)

    @activity.defn(name="detect_music")
    def detect_music(self, audio: AudioRef) -> MusicResult:
        self._ran("music")
        return MusicResult(key="m", backend="stand-in", num_regions=0, music_s=0.0)

    @activity.defn(name="embed_speakers")
    def embed_speakers(self, req: EmbedRequest) -> EmbeddingResult:
        self._ran("embed")
        return EmbeddingResult(key="e", backend="stand-in", centroids_key="c", dim=192, num_segments=2)

    @activity.defn(name="label_segments")
    def label_segments(self, request: LabelRequest) -> LabelResult:
        self._ran("labels")
        return LabelResult(key="l", backend="stand-in", num_segments=2, labels_version=1, dnsmos_model="x")

    @activity.defn(name="commit_outputs")
    def commit_outputs(self, req: CommitRequest) -> VideoOutcome:
        return VideoOutcome(video_id=req.spec.video_id, batch_id="b", state=VideoState.COMPLETED)


async def run_video(
    client: Client, stand_ins: StandIns, prefix: str, escalation: Escalation = Escalation.LARGEST_SERVED
) -> VideoOutcome:
    workflow_acts = [stand_ins.committed_video, stand_ins.served_gpu_classes, stand_ins.commit_outputs]
    model_acts = [
        stand_ins.diarize_audio,
        stand_ins.detect_music,
        stand_ins.embed_speakers,
        stand_ins.label_segments,
    ]
    stand_in_queues = {
        queues.workflow_queue(prefix): ([VideoWorkflow], workflow_acts),
        queues.download_queue(prefix): ([], [stand_ins.download_audio]),
        **{queues.gpu_queue(prefix, c): ([], model_acts) for c in ("t4", "a10", "a100-40")},
    }
    async with in_process_workers(client, stand_in_queues):
        job = VideoJob(
            spec=VideoSpec(video_id=prefix, url="http://127.0.0.1/x.m4a"),
            queue_prefix=prefix,
            gpu_class="t4",
            queue_timeout_s=60,
            escalation=escalation,
        )
        return await client.execute_workflow(
            VideoWorkflow.run, job, id=f"video-{prefix}", task_queue=queues.workflow_queue(prefix)
        )


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        (["t4", "a10", "a100-40"], "a10"),  # the smallest served class that holds 5 h
        (["t4", "a100-40"], "a100-40"),  # a10 has no worker: the next served class above
        (["t4"], "t4"),  # none above is served: it stays, with t4's batches (LARGEST_SERVED)
    ],
)
def test_a_five_hour_episode_moves_to_a_served_class_that_holds_it_before_its_model_stages(
    stack, served, expected
):
    stand_ins = StandIns(served)
    prefix = f"long-{len(served)}"

    async def go():
        return await run_video(await connect(stack.settings()), stand_ins, prefix)

    outcome = asyncio.run(go())
    moves = [f"t4->{expected}: 5.0 h of audio"] if expected != "t4" else []
    assert outcome.gpu_class == expected and outcome.escalations == moves, outcome
    assert set(stand_ins.queues.values()) == {queues.gpu_queue(prefix, expected)}, stand_ins.queues


def test_a_five_hour_episode_with_no_class_to_hold_it_fails_when_told_to(stack):
    """Escalation.FAIL: no served class holds it, so NoWorkerForClass before any model stage."""
    stand_ins = StandIns(["t4"])

    async def go():
        with pytest.raises(WorkflowFailureError) as failed:
            await run_video(await connect(stack.settings()), stand_ins, "long-none", Escalation.FAIL)
        return failed.value.cause

    cause = asyncio.run(go())
    assert cause.type == "NoWorkerForClass" and "5.0 h of audio" in cause.message, cause
    assert stand_ins.queues == {}, "no model stage ran"
