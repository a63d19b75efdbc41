"""Typed pipeline errors -> Temporal ApplicationErrors.

The class name is the error ``type``: it shows in the Web UI, the ErrorType search
attribute and ``starter status``. Permanent errors are non-retryable right here as
well as in the policies, so no attempt is wasted on a video that cannot succeed.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from core.errors import PipelineError, RateLimited, SourceBlocked

# the source pushing back (a 429, a bot check): asking again at once only digs deeper
COOL_DOWN_ERRORS = (RateLimited, SourceBlocked)


def to_application_error(exc: PipelineError, rate_limit_backoff_s: float) -> ApplicationError:
    """A 429 or a bot check asks for a long pause (settings.rate_limit_backoff_s),
    overriding the policy's backoff."""
    cool_down = timedelta(seconds=rate_limit_backoff_s) if isinstance(exc, COOL_DOWN_ERRORS) else None
    return ApplicationError(
        str(exc), type=type(exc).__name__, non_retryable=not exc.retryable, next_retry_delay=cool_down
    )
