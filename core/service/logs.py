"""structlog set-up: JSON for machines, console for a terminal.

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
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=True)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    # Temporal's SDK logs through stdlib logging; keep it, but not at debug chatter.
    logging.getLogger("temporalio").setLevel(max(logging.getLevelName(level), logging.INFO))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    # configure_logging's wrapper class (make_filtering_bound_logger), as structlog's default is
    return cast(structlog.typing.FilteringBoundLogger, structlog.get_logger(name))
