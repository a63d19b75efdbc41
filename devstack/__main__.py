"""``python -m devstack up | status | down``: the embedded stack, kept up in the background.

    python -m devstack up [--media DIR] [--data-dir DIR] [--free-ports]
    python -m devstack status [--data-dir DIR]
    python -m devstack down [--data-dir DIR]

``up`` serves ``--media`` (default: the sample audio) at the media address, so a CSV
of your own can name your own files over HTTP, as yt-dlp downloads them in production.
At the default ports every starter default points at it; ``--free-ports`` picks free
ones (beside a running demo or a test) and the printed starter command carries the
settings that reach them. Exit codes: 0 done (status: every part running), 1 status:
a part is down, 2 a part could not start, 3 status: no stack is recorded here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.service.exit import exit_now
from core.service.logs import configure_logging
from devstack import background
from devstack.stack import REPO_ROOT, StackConfig, StackError

DATA_DIR = REPO_ROOT / ".data"
SAMPLE_AUDIO = REPO_ROOT / "samples" / "audio"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("up", "start the stack in the background and print how to use it"),
        ("status", "which parts of the stack still run"),
        ("down", "stop the stack that up started"),
    ]:
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"default {DATA_DIR}")
        if name == "up":
            cmd.add_argument("--media", type=Path, default=SAMPLE_AUDIO, help="folder served over HTTP")
            cmd.add_argument("--free-ports", action="store_true", help="free ports instead of the defaults")
    args = parser.parse_args(argv)
    configure_logging("WARNING", "console")
    data_dir = args.data_dir.resolve()

    if args.command == "up":
        if not args.media.is_dir():
            print(f"error: --media {args.media}: not a folder", flush=True)
            return 2
        make = StackConfig.ephemeral if args.free_ports else StackConfig
        config = make(data_dir=data_dir, media_dir=args.media.resolve())
        try:
            state = background.up(config)
        except StackError as exc:
            print(f"error: {exc}", flush=True)
            return 2
        print("\n".join(background.describe(state)), flush=True)
        return 0

    if args.command == "down":
        stopped = background.down(data_dir)
        print(f"stopped: {', '.join(stopped)}" if stopped else f"nothing running from {data_dir}")
        return 0
    state = background.read_state(data_dir)
    if state is None:
        print(f"no stack recorded in {data_dir}: python -m devstack up starts one")
        return 3
    lines, healthy = background.status_lines(state)
    print("\n".join([f"stack from {data_dir}: {'up' if healthy else 'DEGRADED'}", *lines]))
    if healthy:
        print(f"  Temporal {state.temporal_address}, S3 {state.s3_url}, media {state.media_url}/")
    else:
        print("  python -m devstack down, then up, starts it again; logs in " + str(data_dir / "logs"))
    return 0 if healthy else 1


if __name__ == "__main__":
    exit_now(main())
