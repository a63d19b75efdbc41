"""The embedded stack kept up in the background: ``python -m devstack up | status | down``.

``make demo`` keeps its stack up only while it holds the terminal. An operator trying
their own CSV wants the stack up in one command and the shell back: ``up`` starts the
same parts as the demo (devstack/stack.py) in sessions of their own, so neither
the shell's Ctrl-C nor its exit stops them, waits for the worker to poll, records what
it started in ``<data dir>/stack.json`` and prints the exact starter command to run.
``down`` stops what that file names (a process is stopped only if its command line is
still the one recorded: a pid the system has since handed to another program is left
alone); ``status`` says what still runs.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from core.service.settings import Settings
from devstack.stack import REPO_ROOT, Stack, StackConfig, StackError, log_events, port_open

STATE_FILE = "stack.json"
WORKER_READY_S = 180.0  # models load (and export for onnxruntime the first time) before it polls
STOP_S = 20.0  # SIGTERM, then SIGKILL: the worker drains within its graceful shutdown


class Part(BaseModel):
    """One process of a stack kept up in the background."""

    model_config = ConfigDict(frozen=True)

    pid: int
    cmdline: list[str]
    port: int | None  # where it listens, if it does


class BackgroundStack(BaseModel):
    """What ``up`` started, in start order: what ``status`` checks and ``down`` stops."""

    model_config = ConfigDict(frozen=True)

    parts: dict[str, Part]
    temporal_address: str
    ui_url: str | None
    s3_url: str
    bucket: str
    media_url: str
    media_dir: str
    data_dir: str
    env: dict[str, str]  # PIPELINE_* the starter needs to reach it (none at the default ports)


def up(config: StackConfig) -> BackgroundStack:
    """Start the stack in the background and wait for its worker to poll; StackError if a
    part cannot start (what had started is stopped again)."""
    running = read_state(config.data_dir)
    if running is not None and any(alive(part) for part in running.parts.values()):
        raise StackError(
            f"a stack is already up from {config.data_dir} (python -m devstack status; "
            "python -m devstack down stops it)"
        )
    stack = Stack(config, detached=True)
    stack.start()
    try:
        _wait_for_worker(stack)
    except StackError:
        stack.stop()
        raise
    ports = {"temporal": config.temporal_port, "storage": config.s3_port, "media": config.media_port}
    state = BackgroundStack(
        parts={
            name: Part(pid=proc.pid, cmdline=cmdline(proc.pid), port=ports.get(name))
            for name, proc in stack.procs.items()
        },
        temporal_address=stack.temporal_address,
        ui_url=stack.ui_url,
        s3_url=stack.s3_url,
        bucket=config.bucket,
        media_url=stack.media_url,
        media_dir=str(config.media_dir),
        data_dir=str(config.data_dir),
        env=starter_env(stack),
    )
    (config.data_dir / STATE_FILE).write_text(state.model_dump_json(indent=2) + "\n")
    return state


def down(data_dir: Path) -> list[str]:
    """Stop every recorded part still running, the worker first; the names stopped."""
    state = read_state(data_dir)
    if state is None:
        return []
    stopped = []
    for name, part in reversed(state.parts.items()):
        if alive(part):
            _stop(part)
            stopped.append(name)
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    return stopped


def read_state(data_dir: Path) -> BackgroundStack | None:
    path = data_dir / STATE_FILE
    if not path.is_file():
        return None
    return BackgroundStack.model_validate_json(path.read_text())


def alive(part: Part) -> bool:
    """Whether the recorded process still runs, and is still the program recorded."""
    return cmdline(part.pid) == part.cmdline


def cmdline(pid: int) -> list[str]:
    """The process's command line as the kernel has it (a script's interpreter first);
    empty once it has exited, even before it is reaped."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def starter_env(stack: Stack) -> dict[str, str]:
    """The PIPELINE_* settings a shell needs to reach ``stack``: only those that differ
    from the defaults, so at the default ports a bare starter command works."""
    defaults = Settings.model_fields
    wanted = {
        "temporal_address": stack.temporal_address,
        "temporal_namespace": stack.config.namespace,
        "s3_endpoint_url": stack.s3_url,
        "s3_bucket": stack.config.bucket,
        "task_queue_prefix": stack.config.queue_prefix,
    }
    return {f"PIPELINE_{k.upper()}": v for k, v in wanted.items() if defaults[k].default != v}


def starter_command(state: BackgroundStack, *args: str) -> str:
    """The starter command line, as a shell takes it, that reaches ``state``'s stack."""
    python = Path(sys.executable)
    shown = ".venv/bin/python" if python == REPO_ROOT / ".venv" / "bin" / "python" else str(python)
    env = [f"{k}={shlex.quote(v)}" for k, v in state.env.items()]
    return " ".join([*env, shown, "-m", "starter", *args])


def describe(state: BackgroundStack) -> list[str]:
    """What an operator needs to use the stack: its addresses and the commands."""
    media = Path(state.media_dir)
    served = sorted(p.name for p in media.iterdir() if p.is_file()) if media.is_dir() else []
    example = served[0] if served else "episode.m4a"
    ui = f"   Web UI {state.ui_url}" if state.ui_url else ""
    return [
        f"stack up: data in {state.data_dir}, logs in {Path(state.data_dir) / 'logs'}",
        f"  Temporal  {state.temporal_address}{ui}",
        f"  S3        {state.s3_url}   bucket {state.bucket}",
        f"  media     {state.media_url}/   serves {state.media_dir}",
        f"  worker    pid {state.parts['worker'].pid}" if "worker" in state.parts else "  worker    none",
        "run a batch of your own (CSV columns video_id,url[,duration_s]), from the repository:",
        f"  {starter_command(state, 'start', '--csv', 'my.csv', '--batch-id', 'mine', '--wait')}",
        f"  a row for a file of the served folder: ep01,{state.media_url}/{example}",
        "stop it: make down (or .venv/bin/python -m devstack down)",
    ]


def status_lines(state: BackgroundStack) -> tuple[list[str], bool]:
    """One line per part (running or not, listening or not), and whether all run."""
    lines, healthy = [], True
    for name, part in state.parts.items():
        running = alive(part)
        listening = part.port is None or port_open(part.port)
        healthy &= running and listening
        where = f", port {part.port} {'open' if listening else 'closed'}" if part.port else ""
        lines.append(f"  {name:<9} pid {part.pid} {'running' if running else 'not running'}{where}")
    return lines, healthy


def _wait_for_worker(stack: Stack) -> None:
    log = stack.logs / "worker.log"
    proc = stack.procs["worker"]
    deadline = time.monotonic() + WORKER_READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise StackError(f"the worker exited with code {proc.returncode}:\n{tail}")
        if log.exists() and any(e.get("event") == "worker.started" for e in log_events(log)):
            return
        time.sleep(0.3)
    raise StackError(f"the worker did not start polling within {WORKER_READY_S:.0f} s; see {log}")


def _stop(part: Part) -> None:
    """SIGTERM to the part's process group (it leads one: its children, ffmpeg and
    yt-dlp under the worker, go too), SIGKILL if it outlives STOP_S."""
    for sig, wait_s in ((signal.SIGTERM, STOP_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(part.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not alive(part):  # an exited process not yet reaped has no command line
                return
            time.sleep(0.1)
