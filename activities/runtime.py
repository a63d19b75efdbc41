"""What every activity needs from its worker process: settings, storage, identity.

Built once per process from the environment (``configure`` lets a worker pass its
own settings). Activities never receive secrets in their payloads; they read them
here, on the machine that runs them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import structlog
from temporalio import activity

from core.audio import load_wav
from core.errors import PipelineError
from core.models import AudioRef
from core.settings import Settings, get_settings
from core.storage import ObjectStore


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def store(self) -> ObjectStore:
        return ObjectStore(self.settings)

    @cached_property
    def worker_id(self) -> str:
        return self.settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


_runtime: Runtime | None = None


def configure(settings: Settings) -> Runtime:
    global _runtime
    _runtime = Runtime(settings)
    return _runtime


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(get_settings())
    return _runtime


@contextlib.contextmanager
def stage(name: str) -> Iterator[structlog.stdlib.BoundLogger]:
    """Bind log context, keep the activity heartbeating, and map typed errors.

    Heartbeats come from a side thread every few seconds while the stage works: if
    the worker process dies, they stop and the heartbeat timeout hands the activity to
    another worker. Typed pipeline errors become ApplicationErrors whose ``type`` is
    the class name (the ErrorType the operator sees).
    """
    info = activity.info()
    rt = runtime()
    log = structlog.get_logger("activity").bind(
        workflow_id=info.workflow_id,
        activity=name,
        attempt=info.attempt,
        worker_id=rt.worker_id,
    )
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(5.0):
            try:
                activity.heartbeat()
            except Exception:  # the activity is finishing or cancelled: stop quietly
                return

    beater = threading.Thread(target=beat, name=f"heartbeat-{name}", daemon=True)
    beater.start()
    started = time.perf_counter()
    try:
        yield log
        log.info("stage.done", seconds=round(time.perf_counter() - started, 3))
    except PipelineError as exc:
        from activities.errors import to_application_error

        log.warning("stage.failed", error_type=type(exc).__name__, error=str(exc))
        raise to_application_error(exc) from None
    finally:
        stop.set()


@contextlib.contextmanager
def scratch_dir(video_id: str) -> Iterator[Path]:
    """A per-attempt local folder, removed whatever happens."""
    base = runtime().settings.work_dir
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{video_id}-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def load_analysis_audio(audio: AudioRef, workdir: Path) -> tuple[np.ndarray, int]:
    """Fetch the 16 kHz analysis copy from storage into memory."""
    path = runtime().store.download_file(audio.analysis_key, workdir / "analysis_16k.wav")
    return load_wav(path)
