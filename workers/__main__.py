"""``python -m workers``: start this machine's worker (settings from PIPELINE_* env)."""

from core.service.exit import exit_now
from workers.worker import main

if __name__ == "__main__":
    exit_now(main())
