"""The stage table: what each stage of a video runs, on which queue, under which policy.

    download ──> diarize ─┬─> embed ───┬─> upload (metadata.json last)
                 music ───┴─> labels ──┘

One entry per stage, typed by its activity's input and result, so the workflow calls
each activity by reference (click through to it) and the worker registers each one on
the queue its entry names. Stage names are ``core.stages.Stage``; policies are
``workflows/policies.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.diarize import diarize_audio
    from activities.download import download_audio
    from activities.embed import embed_speakers
    from activities.labels import label_segments
    from activities.music import detect_music
    from activities.upload import finalize_outputs
    from core.stages import Stage
    from workflows import policies

In = TypeVar("In")
Out = TypeVar("Out")


class QueueKind(Enum):
    DOWNLOAD = "download"  # core.queues.download_queue: CPU, rate-limited fleet-wide
    GPU = "gpu"  # core.queues.gpu_queue of the video's GPU class
    LOCAL = "local"  # a local activity of the worker running the workflow


@dataclass(frozen=True)
class StageSpec(Generic[In, Out]):
    stage: Stage
    activity: Callable[[In], Out]
    queue: QueueKind
    policy: policies.ActivityPolicy


DOWNLOAD = StageSpec(Stage.DOWNLOAD, download_audio, QueueKind.DOWNLOAD, policies.DOWNLOAD)
DIARIZE = StageSpec(Stage.DIARIZE, diarize_audio, QueueKind.GPU, policies.MODEL_STAGE)
MUSIC = StageSpec(Stage.MUSIC, detect_music, QueueKind.GPU, policies.MODEL_STAGE)
EMBED = StageSpec(Stage.EMBED, embed_speakers, QueueKind.GPU, policies.MODEL_STAGE)
LABELS = StageSpec(Stage.LABELS, label_segments, QueueKind.GPU, policies.MODEL_STAGE)
UPLOAD = StageSpec(Stage.UPLOAD, finalize_outputs, QueueKind.LOCAL, policies.UPLOAD)

STAGES: tuple[StageSpec[Any, Any], ...] = (DOWNLOAD, DIARIZE, MUSIC, EMBED, LABELS, UPLOAD)


def activities_on(kind: QueueKind) -> list[Callable[..., Any]]:
    """What a worker registers on the queue of this kind."""
    return [spec.activity for spec in STAGES if spec.queue is kind]
