"""``python -m workers``: start this machine's worker (settings from PIPELINE_* env)."""

import sys

from workers.worker import main

if __name__ == "__main__":
    sys.exit(main())
