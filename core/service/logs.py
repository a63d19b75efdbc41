"""structlog set-up: JSON for machines, console for a terminal, one format for every
line the process writes (structlog's own and the libraries' stdlib records).

Activities bind workflow id, video id, activity, attempt and worker id to every line
(``activities/runtime.py``, ``stage``). Nothing secret is ever passed to a logger: settings hold
secrets as SecretStr, which renders as '**********'.
"""

from __future__ import annotations

import logging
import sys
from typing import cast

import structlog


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """One stream of one format: structlog's events and the stdlib records of the
    libraries (temporalio, botocore, urllib3) go through the same processors and
    renderer, each line naming its logger; in JSON, a traceback is a structured field."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    console = fmt == "console"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=True) if console else structlog.processors.JSONRenderer()
    )
    # a traceback's frames without their local variables: a local may hold a token or a cookie
    frames = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    exceptions: structlog.types.Processor = (
        structlog.processors.format_exc_info if console else structlog.processors.ExceptionRenderer(frames)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, exceptions, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # Temporal's SDK logs through stdlib logging; keep it, but not at debug chatter.
    logging.getLogger("temporalio").setLevel(max(logging.getLevelName(level), logging.INFO))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    # configure_logging's wrapper class (make_filtering_bound_logger), as structlog's default is
    return cast(structlog.typing.FilteringBoundLogger, structlog.get_logger(name))
