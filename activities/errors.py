"""Typed pipeline errors -> Temporal ApplicationErrors.

The class name is the error ``type``: it shows in the Web UI, the ErrorType search
attribute and ``starter status``. Permanent errors are non-retryable right here as
well as in the policies, so no attempt is wasted on a video that cannot succeed.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from core.errors import PipelineError, RateLimited
from workflows.policies import RATE_LIMIT_BACKOFF


def to_application_error(exc: PipelineError) -> ApplicationError:
    return ApplicationError(
        str(exc),
        type=type(exc).__name__,
        non_retryable=not exc.retryable,
        next_retry_delay=RATE_LIMIT_BACKOFF if isinstance(exc, RateLimited) else None,
    )
