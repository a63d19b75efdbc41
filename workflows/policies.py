"""Retry policies and timeouts, one per purpose: no workflow writes a timeout inline.

Permanent failures (the typed errors in core.contracts.errors) are never retried; transient ones
back off exponentially. A 429 from the source asks for a longer wait through the
error's ``next_retry_delay`` (settings.rate_limit_backoff_s, see activities/errors.py),
which overrides the backoff. Model stages retry after 1 s: a worker that is shutting
down hands its checkpointed activity over at once, and a CUDA OOM retries at once with
the halved batch. The heartbeat timeout of a pipeline stage is the job's (an operator
setting); the others' are fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy

from core.contracts.errors import NON_RETRYABLE_ERROR_TYPES, SOURCE_SIDE_ERROR_TYPES


class LocalActivityOptions(TypedDict):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy


class ActivityOptions(LocalActivityOptions):
    schedule_to_close_timeout: timedelta | None
    heartbeat_timeout: timedelta | None


@dataclass(frozen=True)
class ActivityPolicy:
    start_to_close: timedelta
    retry: RetryPolicy
    # set: the activity may retry without an attempt limit until this has passed
    schedule_to_close: timedelta | None = None
    # set: the activity heartbeats at least this often (pipeline stages take the job's instead)
    heartbeat: timedelta | None = None

    def options(self, heartbeat: timedelta | None = None, audio_s: float | None = None) -> ActivityOptions:
        """The timeout and retry keywords of ``workflow.execute_activity``; given the
        audio's length, the start-to-close timeout scales with it (``scaled``)."""
        return {
            "start_to_close_timeout": self.scaled(audio_s),
            "schedule_to_close_timeout": self.schedule_to_close,
            "heartbeat_timeout": heartbeat or self.heartbeat,
            "retry_policy": self.retry,
        }

    def scaled(self, audio_s: float | None) -> timedelta:
        """``start_to_close`` for a step on ``audio_s`` seconds of audio: a fixed
        allowance plus one second per second of audio, at most ``start_to_close``. A
        step that hangs is stopped by its progress bound long before (settings.stall_s);
        this is the backstop, and a 20-minute episode is not given three hours."""
        if audio_s is None:
            return self.start_to_close
        return min(self.start_to_close, SCALED_FIXED + timedelta(seconds=audio_s * SCALED_PER_AUDIO_S))

    def local_options(self) -> LocalActivityOptions:
        """The same for ``workflow.execute_local_activity`` (no heartbeats)."""
        return {"start_to_close_timeout": self.start_to_close, "retry_policy": self.retry}


SCALED_FIXED = timedelta(minutes=30)
SCALED_PER_AUDIO_S = 1.0


def _retry(initial_s: float, max_interval_s: float, attempts: int, *also_permanent: str) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial_s),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=max_interval_s),
        maximum_attempts=attempts,  # 0: unlimited (schedule_to_close ends it)
        non_retryable_error_types=[*NON_RETRYABLE_ERROR_TYPES, *also_permanent],
    )


# --- a video's stages (workflows/stages.py) ---------------------------------------------
DOWNLOAD = ActivityPolicy(timedelta(hours=1), _retry(5, 600, 8))
# the download of a video that handles source-side errors itself (waits a cool-down,
# tells its batch's breaker): they come straight back to the workflow
DOWNLOAD_SOURCE_AWARE = ActivityPolicy(DOWNLOAD.start_to_close, _retry(5, 600, 8, *SOURCE_SIDE_ERROR_TYPES))
MODEL_STAGE = ActivityPolicy(timedelta(hours=3), _retry(1, 300, 20))
# a few storage calls, run as local activities of the workflow worker: the commit and
# the look for an earlier commit. COMMIT's 30 attempts end after ~48 min.
COMMIT = ActivityPolicy(timedelta(minutes=30), _retry(2, 120, 30))
# the claim on a video's audio: a few storage calls once the worker has read the claim
# log; a worker's first claim reads all of it (heartbeats: the job's)
CLAIM = ActivityPolicy(timedelta(hours=2), _retry(2, 120, 30))
# how often a copy looks at its original while that is still running: the first wait,
# doubled each time up to the last
ORIGINAL_WAITS_S = (10.0, 120.0)

# --- a batch's own reads ---------------------------------------------------------------
# its pages in storage: a batch waits out an outage of storage however long it lasts,
# within a day, and goes on at most a minute after storage is back
BATCH_STORAGE = ActivityPolicy(timedelta(minutes=10), _retry(2, 60, 0), schedule_to_close=timedelta(hours=24))
# its look at Temporal for videos that ended without reporting, as patient
BATCH_RECONCILE = ActivityPolicy(
    timedelta(minutes=5), BATCH_STORAGE.retry, schedule_to_close=BATCH_STORAGE.schedule_to_close
)

# a copy's look at where its original stands, and the release of a lost one: as patient
# through an outage of storage or of Temporal's frontend as the batch's own look
ORIGINAL_CHECK = BATCH_RECONCILE

# which GPU classes have a worker, asked before a video moves up the ladder (a few RPCs)
QUEUE_CHECK = ActivityPolicy(timedelta(minutes=1), _retry(1, 30, 10))

# --- exports ---------------------------------------------------------------------------
# one page of an export: shards of up to a page of videos, each shard recorded when whole,
# so a retry redoes at most the shard it was on (heartbeats: the job's)
EXPORT = ActivityPolicy(timedelta(hours=6), _retry(5, 300, 20))
EXPORT_INDEX = ActivityPolicy(timedelta(minutes=30), _retry(2, 120, 30))

# --- the daily manifest and sweep ------------------------------------------------------
MANIFEST = ActivityPolicy(timedelta(hours=2), _retry(2, 120, 30), heartbeat=timedelta(minutes=2))
SWEEP = MANIFEST
# reads every new video's metadata and embeddings, then links them: hours for a first run
# over a whole corpus, minutes for a day's videos
SPEAKER_INDEX = ActivityPolicy(timedelta(hours=6), _retry(3, 120, 30), heartbeat=timedelta(minutes=2))
