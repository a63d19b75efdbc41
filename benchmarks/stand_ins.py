"""Stand-ins for the pipeline's activities, for benchmarks that measure orchestration.

Built from the stage table (``workflows/stages.py``): each stand-in has its stage's real
activity name and signature and returns a valid result, so the real VideoWorkflow runs
unchanged around them; ``wait(video_id, stage)`` decides how long each one takes
(nothing: instant). Never used by the pipeline or its tests.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity

from activities.commit import CommitActivities
from core.contracts.stages import Stage
from core.contracts.video import (
    AudioRef,
    CommitRequest,
    DiarizationResult,
    EmbeddingResult,
    LabelResult,
    MusicResult,
    VideoOutcome,
    VideoSpec,
    VideoState,
)
from workflows.stages import STAGES, QueueKind, StageSpec

Wait = Callable[[str, Stage], Awaitable[None]]


@dataclass
class StandIns:
    download: list[Callable[..., Any]]
    gpu: list[Callable[..., Any]]
    commit: list[Callable[..., Any]]  # the local activities of the workflow worker


async def _instant(video_id: str, stage: Stage) -> None:
    return None


def _video_id(arg: Any) -> str:
    """The video a stage's input is about (a spec, an audio reference, or a request holding one)."""
    for holder in (arg, getattr(arg, "audio", None), getattr(arg, "spec", None)):
        if isinstance(getattr(holder, "video_id", None), str):
            return holder.video_id
    raise TypeError(f"no video id in {type(arg).__name__}")


def _results(duration_s: Callable[[str], float]) -> dict[Stage, Callable[[Any], Any]]:
    return {
        Stage.DOWNLOAD: lambda spec: AudioRef(
            video_id=spec.video_id,
            original_key="o",
            analysis_key="a",
            duration_s=duration_s(spec.video_id),
            sha256="0",
        ),
        Stage.DIARIZE: lambda _: DiarizationResult(
            key="d", backend="stand-in", num_speakers=2, num_segments=10, speech_s=50.0
        ),
        Stage.MUSIC: lambda _: MusicResult(key="m", backend="stand-in", num_regions=0, music_s=0.0),
        Stage.EMBED: lambda _: EmbeddingResult(
            key="e", centroids_key="c", backend="stand-in", dim=256, num_segments=10
        ),
        Stage.LABELS: lambda _: LabelResult(
            key="l", backend="stand-in", num_segments=10, labels_version=1, dnsmos_model="stand-in"
        ),
        Stage.COMMIT: lambda req: _completed(req),
    }


def _completed(req: CommitRequest) -> VideoOutcome:
    return VideoOutcome(video_id=req.spec.video_id, batch_id=req.spec.batch_id, state=VideoState.COMPLETED)


def _stand_in(spec: StageSpec[Any, Any], wait: Wait, result: Callable[[Any], Any]) -> Callable[..., Any]:
    hints = typing.get_type_hints(spec.activity)  # self has no hint: the input's and the result's
    (input_type,) = [hint for name, hint in hints.items() if name != "return"]

    async def stand_in(arg: Any) -> Any:
        await wait(_video_id(arg), spec.stage)
        return result(arg)

    stand_in.__annotations__ = {"arg": input_type, "return": hints["return"]}  # the real signature
    return activity.defn(name=spec.activity.__name__)(stand_in)  # activities are named after their method


@activity.defn(name=CommitActivities.committed_video.__name__)
async def _nothing_committed(spec: VideoSpec) -> VideoOutcome | None:
    return None  # nothing is ever committed before: every video runs its stages


def stand_in_activities(
    wait: Wait = _instant, duration_s: Callable[[str], float] = lambda _v: 60.0
) -> StandIns:
    results = _results(duration_s)
    by_kind: dict[QueueKind, list[Callable[..., Any]]] = {kind: [] for kind in QueueKind}
    for spec in STAGES:
        if spec.stage is Stage.CLAIM:  # a stand-in download has no fingerprint: no claim runs
            continue
        by_kind[spec.queue].append(_stand_in(spec, wait, results[spec.stage]))
    return StandIns(
        by_kind[QueueKind.DOWNLOAD], by_kind[QueueKind.GPU], [_nothing_committed, *by_kind[QueueKind.LOCAL]]
    )
