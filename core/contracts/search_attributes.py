"""Search attributes the Web UI filters on, and the values ``PipelineStage`` takes.
Registered by the dev server at start (devstack) or once per cluster (deploy/)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from temporalio.common import SearchAttributeKey

BATCH_ID = SearchAttributeKey.for_keyword("BatchId")
VIDEO_ID = SearchAttributeKey.for_keyword("VideoId")
PIPELINE_STAGE = SearchAttributeKey.for_keyword("PipelineStage")
GPU_CLASS = SearchAttributeKey.for_keyword("GpuClass")
ERROR_TYPE = SearchAttributeKey.for_keyword("ErrorType")
AUDIO_SECONDS = SearchAttributeKey.for_float("AudioSeconds")
USABLE_PCT = SearchAttributeKey.for_float("UsablePct")
NUM_SPEAKERS = SearchAttributeKey.for_int("NumSpeakers")


class Outcome(StrEnum):
    """``PipelineStage`` of a batch or a video once started: where it stands, then how it ended."""

    RUNNING = "running"
    PAUSED = "paused"  # a batch, by the operator
    PAUSED_SOURCE = "paused-source"  # a batch, by its source breaker
    COMPLETED = "completed"
    DUPLICATE = "duplicate"  # a video: committed as a copy of an earlier video's audio
    FAILED = "failed"
    CANCELLED = "cancelled"


ALL: list[SearchAttributeKey[Any]] = [
    BATCH_ID,
    VIDEO_ID,
    PIPELINE_STAGE,
    GPU_CLASS,
    ERROR_TYPE,
    AUDIO_SECONDS,
    USABLE_PCT,
    NUM_SPEAKERS,
]

_CLI_TYPES = {str: "Keyword", float: "Double", int: "Int"}


def cli_definitions() -> list[str]:
    """``Name=Type`` pairs for ``temporal server start-dev --search-attribute``."""
    return [f"{key.name}={_CLI_TYPES[key.value_type]}" for key in ALL]
