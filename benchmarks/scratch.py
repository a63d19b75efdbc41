"""A benchmark's asynchronous run in a scratch folder that is gone when it ends.

The run talks to Temporal, so the process leaves through ``core.service.exit.exit_now``: the
SDK's native core can abort the interpreter while it finalizes, turning a good run
into a crash.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from core.service.exit import exit_now


def run_in_scratch(prefix: str, run: Callable[[Path], Coroutine[Any, Any, int]]) -> None:
    """``run`` on a fresh folder (its name starts with ``prefix``), then exit with its code."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        code = asyncio.run(run(Path(tmp)))
    exit_now(code)
