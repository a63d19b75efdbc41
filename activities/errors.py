"""Typed pipeline errors -> Temporal ApplicationErrors.

The class name is the error ``type``: it shows in the Web UI, the ErrorType search
attribute and ``starter status``. Permanent errors are non-retryable right here as
well as in the policies, so no attempt is wasted on a video that cannot succeed.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from core.contracts.errors import SOURCE_SIDE_ERRORS, PipelineError


def to_application_error(exc: PipelineError, rate_limit_backoff_s: float) -> ApplicationError:
    """A 429 or a bot check asks for a long pause (settings.rate_limit_backoff_s),
    overriding the policy's backoff: asking again at once only digs deeper."""
    cool_down = timedelta(seconds=rate_limit_backoff_s) if isinstance(exc, SOURCE_SIDE_ERRORS) else None
    details = () if exc.details is None else (exc.details,)
    return ApplicationError(
        str(exc),
        *details,
        type=type(exc).__name__,
        non_retryable=not exc.retryable,
        next_retry_delay=cool_down,
    )
