"""How a failed video is named: the ErrorType search attribute, ``starter status`` and the
batch's failure counts all show what this returns."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

from core.contracts.errors import NoWorkerForClass


def failure_of(err: ActivityError | ApplicationError, queue_timeout_s: float, queue: str) -> tuple[str, str]:
    """The ErrorType and message a failed video shows: the stage's typed error, else what
    Temporal timed out (a stage nobody took from its queue: NoWorkerForClass)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    message = str(cause) if cause else err.message
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type, message
    if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
        return NoWorkerForClass.__name__, f"no worker took it within {queue_timeout_s:.0f} s (queue {queue})"
    if isinstance(cause, TimeoutError):
        return (f"Timeout{cause.type.name.title().replace('_', '')}" if cause.type else "Timeout"), message
    return (type(cause).__name__ if cause else "ActivityError"), message
