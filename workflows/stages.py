"""The stage table: what each stage of a video runs, on which queue, under which policy.

    download ──> claim ──> diarize ─┬─> embed ───┬─> commit (metadata.json last)
                   │        music ───┴─> labels ──┘
                   └─ a copy of an earlier video's audio ──> commit as its Duplicate

One entry per stage, typed by its activity's input and result, so the workflow calls
each activity by reference (click through to it) and the worker registers each one on
the queue its entry names. Stage names are ``core.contracts.stages.Stage``; policies are
``workflows/policies.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.audio_claims import AudioClaimActivities
    from activities.commit import CommitActivities
    from activities.diarize import DiarizeActivities
    from activities.download import DownloadActivities
    from activities.embed import EmbedActivities
    from activities.labels import LabelActivities
    from activities.music import MusicActivities
    from core.contracts import queues
    from core.contracts.stages import Stage
    from workflows import policies

In = TypeVar("In")
Out = TypeVar("Out")


class QueueKind(Enum):
    DOWNLOAD = "download"  # core.contracts.queues.download_queue: CPU, rate-limited fleet-wide
    GPU = "gpu"  # core.contracts.queues.gpu_queue of the video's GPU class
    CLAIMS = "claims"  # core.contracts.queues.claim_queue: the workers that keep the claim index
    LOCAL = "local"  # a local activity of the worker running the workflow


@dataclass(frozen=True)
class StageSpec(Generic[In, Out]):
    stage: Stage
    activity: Callable[[Any, In], Out]  # an activity method, named on its class
    queue: QueueKind
    policy: policies.ActivityPolicy


DOWNLOAD = StageSpec(Stage.DOWNLOAD, DownloadActivities.download_audio, QueueKind.DOWNLOAD, policies.DOWNLOAD)
CLAIM = StageSpec(Stage.CLAIM, AudioClaimActivities.claim_audio, QueueKind.CLAIMS, policies.CLAIM)
DIARIZE = StageSpec(Stage.DIARIZE, DiarizeActivities.diarize_audio, QueueKind.GPU, policies.MODEL_STAGE)
MUSIC = StageSpec(Stage.MUSIC, MusicActivities.detect_music, QueueKind.GPU, policies.MODEL_STAGE)
EMBED = StageSpec(Stage.EMBED, EmbedActivities.embed_speakers, QueueKind.GPU, policies.MODEL_STAGE)
LABELS = StageSpec(Stage.LABELS, LabelActivities.label_segments, QueueKind.GPU, policies.MODEL_STAGE)
COMMIT = StageSpec(Stage.COMMIT, CommitActivities.commit_outputs, QueueKind.LOCAL, policies.COMMIT)
# the commit of a video whose claim found it a copy: in place of the model stages and COMMIT
COMMIT_DUPLICATE = StageSpec(
    Stage.COMMIT, CommitActivities.commit_duplicate, QueueKind.LOCAL, policies.COMMIT
)
# the commit as runs started before 2026-12-07 call it (workflows/video.py, patch COMMIT_NAME)
COMMIT_UNDER_OLD_NAME = StageSpec(
    Stage.COMMIT, CommitActivities.commit_outputs_under_old_name, QueueKind.LOCAL, policies.COMMIT
)

STAGES: tuple[StageSpec[Any, Any], ...] = (DOWNLOAD, CLAIM, DIARIZE, MUSIC, EMBED, LABELS, COMMIT)
# every stage activity a worker registers: a video runs either COMMIT or COMMIT_DUPLICATE
REGISTERED: tuple[StageSpec[Any, Any], ...] = (*STAGES, COMMIT_DUPLICATE)


def task_queue(kind: QueueKind, prefix: str, gpu_class: str) -> str:
    """The task queue a stage of this kind runs on, for a video of this GPU class."""
    if kind is QueueKind.DOWNLOAD:
        return queues.download_queue(prefix)
    if kind is QueueKind.GPU:
        return queues.gpu_queue(prefix, gpu_class)
    if kind is QueueKind.CLAIMS:
        return queues.claim_queue(prefix)
    return "local"  # the workflow's own worker


def activities_on(kind: QueueKind) -> list[Callable[..., Any]]:
    """What a worker registers on the queue of this kind (bound by it to its instances)."""
    return [spec.activity for spec in REGISTERED if spec.queue is kind]
