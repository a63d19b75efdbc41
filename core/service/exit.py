"""Process exit for the CLI entry points.

The Temporal SDK's native core can abort the interpreter while it finalizes
("PyGILState_Release: thread state ... must be current"), turning a successful run
into exit code -6 about once in eight runs. Entry points therefore flush their output
and leave with ``os._exit``, skipping a finalization they do not need.
"""

from __future__ import annotations

import os
import sys


def exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
