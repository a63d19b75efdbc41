"""Stand-ins for the pipeline's activities, for benchmarks that measure orchestration.

Registered under the real activity names and returning valid results, so the real
VideoWorkflow runs unchanged around them; ``wait(video_id, stage)`` decides how long
each one takes (nothing: instant). Never used by the pipeline or its tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio import activity

from core.models import (
    AudioRef,
    DiarizationResult,
    EmbeddingResult,
    EmbedRequest,
    FinalizeRequest,
    LabelRequest,
    LabelResult,
    MusicResult,
    VideoOutcome,
    VideoSpec,
    VideoState,
)

Wait = Callable[[str, str], Awaitable[None]]


@dataclass
class StandIns:
    download: list[Callable]
    gpu: list[Callable]
    upload: list[Callable]


async def _instant(video_id: str, stage: str) -> None:
    return None


def stand_in_activities(wait: Wait = _instant, duration_s: Callable[[str], float] = lambda _v: 60.0) -> StandIns:
    @activity.defn(name="download_audio")
    async def download_audio(spec: VideoSpec) -> AudioRef:
        await wait(spec.video_id, "download")
        return AudioRef(
            video_id=spec.video_id, original_key="o", analysis_key="a", duration_s=duration_s(spec.video_id), sha256="0"
        )

    @activity.defn(name="diarize_audio")
    async def diarize_audio(audio: AudioRef) -> DiarizationResult:
        await wait(audio.video_id, "diarize")
        return DiarizationResult(key="d", backend="stand-in", num_speakers=2, num_segments=10, speech_s=50.0)

    @activity.defn(name="detect_music")
    async def detect_music(audio: AudioRef) -> MusicResult:
        await wait(audio.video_id, "music")
        return MusicResult(key="m", backend="stand-in", num_regions=0, music_s=0.0)

    @activity.defn(name="embed_speakers")
    async def embed_speakers(req: EmbedRequest) -> EmbeddingResult:
        await wait(req.audio.video_id, "embed")
        return EmbeddingResult(key="e", centroids_key="c", backend="stand-in", dim=256, num_segments=10)

    @activity.defn(name="label_segments")
    async def label_segments(req: LabelRequest) -> LabelResult:
        await wait(req.audio.video_id, "labels")
        return LabelResult(key="l", backend="stand-in", num_segments=10, labels_version=1, dnsmos_model="stand-in")

    @activity.defn(name="committed_video")
    async def committed_video(spec: VideoSpec) -> VideoOutcome | None:
        return None  # nothing is ever committed before: every video runs its stages

    @activity.defn(name="finalize_outputs")
    async def finalize_outputs(req: FinalizeRequest) -> VideoOutcome:
        await wait(req.spec.video_id, "upload")
        return VideoOutcome(video_id=req.spec.video_id, batch_id=req.spec.batch_id, state=VideoState.COMPLETED)

    return StandIns(
        [download_audio], [diarize_audio, detect_music, embed_speakers, label_segments], [committed_video, finalize_outputs]
    )
