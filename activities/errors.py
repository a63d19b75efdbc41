"""Typed pipeline errors -> Temporal ApplicationErrors.

The class name is the error ``type``: it shows in the Web UI, the ErrorType search
attribute and ``starter status``. Permanent errors are non-retryable right here as
well as in the policies, so no attempt is wasted on a video that cannot succeed.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from core.errors import PipelineError, RateLimited


def to_application_error(exc: PipelineError, rate_limit_backoff_s: float) -> ApplicationError:
    """A 429 asks for a long pause (settings.rate_limit_backoff_s), overriding the backoff."""
    return ApplicationError(
        str(exc),
        type=type(exc).__name__,
        non_retryable=not exc.retryable,
        next_retry_delay=timedelta(seconds=rate_limit_backoff_s) if isinstance(exc, RateLimited) else None,
    )
