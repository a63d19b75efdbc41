"""Retry policies and timeouts, declared once per activity kind.

Permanent failures (the typed errors in core.errors) are never retried; transient ones
back off exponentially. A 429 from the source asks for a longer wait through the
error's ``next_retry_delay`` (settings.rate_limit_backoff_s, see activities/errors.py),
which overrides the backoff. Model stages retry after 1 s: a worker that is shutting
down hands its checkpointed activity over at once, and a CUDA OOM retries at once with
the halved batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import RetryPolicy

from core.errors import NON_RETRYABLE_ERROR_TYPES, SOURCE_SIDE_ERROR_TYPES


@dataclass(frozen=True)
class ActivityPolicy:
    """Every queued stage heartbeats (activities.runtime.stage); the timeout comes from the job."""

    start_to_close: timedelta
    retry: RetryPolicy


def _retry(initial_s: float, max_interval_s: float, attempts: int) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial_s),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=max_interval_s),
        maximum_attempts=attempts,
        non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
    )


DOWNLOAD = ActivityPolicy(timedelta(hours=1), _retry(5, 600, 8))
# the download of a video that handles source-side errors itself (waits a cool-down,
# tells its batch's breaker): they come straight back to the workflow
DOWNLOAD_SOURCE_AWARE = ActivityPolicy(
    DOWNLOAD.start_to_close,
    RetryPolicy(
        initial_interval=DOWNLOAD.retry.initial_interval,
        backoff_coefficient=DOWNLOAD.retry.backoff_coefficient,
        maximum_interval=DOWNLOAD.retry.maximum_interval,
        maximum_attempts=DOWNLOAD.retry.maximum_attempts,
        non_retryable_error_types=[*NON_RETRYABLE_ERROR_TYPES, *SOURCE_SIDE_ERROR_TYPES],
    ),
)
MODEL_STAGE = ActivityPolicy(timedelta(hours=3), _retry(1, 300, 20))
UPLOAD = ActivityPolicy(timedelta(minutes=30), _retry(2, 120, 30))  # a local activity: no heartbeat
# one page of an export: shards of up to a page of videos, each shard recorded when whole,
# so a retry redoes at most the shard it was on
EXPORT = ActivityPolicy(timedelta(hours=6), _retry(5, 300, 20))


@dataclass(frozen=True)
class PatientPolicy(ActivityPolicy):
    """A policy that retries without an attempt limit and gives up only after
    ``schedule_to_close``: for work that can only wait for a dependency to come back."""

    schedule_to_close: timedelta = timedelta(hours=24)


# The batch's own reads (its pages in storage, the reconcile's look at Temporal): a
# batch waits out an outage of storage however long it lasts, within a day, and goes
# on at most a minute after storage is back. UPLOAD's 30 attempts end after ~48 min.
BATCH_STORAGE = PatientPolicy(
    timedelta(minutes=10),
    RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=0,  # unlimited: schedule_to_close ends it
        non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
    ),
    schedule_to_close=timedelta(hours=24),
)
