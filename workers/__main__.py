"""``python -m workers``: start this machine's worker (settings from PIPELINE_* env)."""

import argparse

from core.service.exit import exit_now

DESCRIPTION = """Start this machine's worker. It serves the model queues of its GPU class (found with
NVML, or PIPELINE_WORKER_GPU_CLASS) and the CPU queues (downloads, commits, the workflows, exports,
claims on audio), and
drains on SIGTERM or SIGINT: stages in flight are handed over before it exits."""
EPILOG = """Settings come from PIPELINE_* environment variables or a .env file: .env.example lists
them, and the README's settings table says what each does. A bad setting is named on one line
and the worker exits 2 before it connects to anything."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description=DESCRIPTION, epilog=EPILOG)
    return parser.parse_args(argv)


if __name__ == "__main__":
    parse_args()
    from workers.worker import main  # after the arguments: --help needs none of the models

    exit_now(main())
