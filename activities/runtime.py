"""What every activity needs from its worker process: settings, storage, identity.

The worker builds one ``Runtime`` from its settings and hands it to each activity
class it registers (``Activities``), as the SDK samples inject a database client: an
activity reads nothing from module globals, and a test builds its own. Activities
never receive secrets in their payloads; they read them here, on the machine that
runs them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import metrics
from core.analysis.audio import load_wav
from core.contracts.errors import PipelineError, Stalled
from core.contracts.gpu_profiles import GpuProfile, worker_profile
from core.contracts.video import AudioRef
from core.service.settings import Settings
from core.store.errors import riding_out
from core.store.objects import ObjectStore


class WorkerHealth:
    """Whether this process can still do its work. A step stuck in a call that never
    returns (a hung CUDA kernel, a dead network disk) holds its slot and its memory until
    the process ends, whatever Temporal does with the attempt: the worker then leaves
    (exit 1, ``workers/worker.py``) and its supervisor starts a fresh one."""

    def __init__(self) -> None:
        self.unhealthy = threading.Event()
        self.reason = ""

    def fail(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.unhealthy.set()


@dataclass
class Runtime:
    settings: Settings
    gpu_class: str = "cpu"
    health: WorkerHealth = field(default_factory=WorkerHealth)

    @cached_property
    def profile(self) -> GpuProfile:
        """This worker's batch sizes: the class's profile, with settings overrides."""
        return worker_profile(
            self.gpu_class, self.settings.embedding_batch_size, self.settings.segmentation_batch_size
        )

    @cached_property
    def store(self) -> ObjectStore:
        return ObjectStore(self.settings, ride_out_s=self.settings.storage_ride_out_s)

    @cached_property
    def worker_id(self) -> str:
        return self.settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


class Activities:
    """Base of the activity classes: each is built by the worker with its ``Runtime``.
    Their ``@activity.defn`` methods are called by reference from the workflows
    (``workflow.execute_activity_method``); the worker registers them bound."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt


def bind(method: Callable[..., Any], instances: Iterable[Activities]) -> Callable[..., Any]:
    """``method`` (as the workflows name it, on its class) bound to the one instance
    whose class defines or inherits it: two would register one activity name twice."""
    found = [i for i in instances if getattr(type(i), method.__name__, None) is method]
    if not found:
        raise LookupError(f"no activity instance defines {method.__qualname__}")
    if len(found) > 1:
        raise LookupError(f"{method.__qualname__} is an activity of {len(found)} instances")
    return getattr(found[0], method.__name__)  # type: ignore[no-any-return]


class StallInterrupt(BaseException):
    """Raised into a step's thread whose progress stopped (``Heartbeater``); ``stage``
    turns it into ``Stalled``. A BaseException, so no ``except Exception`` swallows it."""


class Heartbeater:
    """Heartbeats the latest details now, and again every few seconds while the stage
    works, so a long step (a slow download, ffmpeg, one model call, clustering, an
    upload) never looks like a dead worker. If the process dies or pauses the beats
    stop, and the heartbeat timeout hands the activity to another worker; the paused
    attempt's next beat is refused, which cancels it (the SDK raises CancelledError in
    the activity's thread). Always re-sends the last details: a bare heartbeat would
    blank them.

    A beat proves the process lives, not that the work moves. Given ``stall_s``, the
    details are the step's progress (bytes, seconds decoded, chunks): when they have not
    changed for that long, the beats stop (Temporal gives the step to another worker at
    the heartbeat timeout), ``StallInterrupt`` is raised in the step's thread (it fails
    ``Stalled`` as soon as it runs Python again, freeing its slot), and if it has not
    returned ``stall_s`` later, ``on_stuck`` says the worker is unhealthy.

    The beating thread runs in a copy of the activity's context: ``activity.heartbeat``
    finds its activity through contextvars, which a plain thread does not inherit."""

    def __init__(
        self,
        interval_s: float,
        stall_s: float | None = None,
        on_stuck: Callable[[str], None] | None = None,
        log: structlog.stdlib.BoundLogger | None = None,
    ):
        self.details: Any = None
        self.stalled = False
        self._stop = threading.Event()
        self._moved_at = time.monotonic()
        self._stall_s, self._on_stuck = stall_s, on_stuck
        self._log = log or structlog.get_logger("activity")
        self._step_thread = threading.get_ident()  # built in the step's own thread
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._loop, interval_s), daemon=True, name="heartbeat"
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def beat(self, details: Any) -> None:
        """Send ``details`` now (a checkpoint a retry must see)."""
        self._note(details)
        activity.heartbeat(details)

    def show(self, details: Any) -> None:
        """Send ``details`` with the next periodic beat (progress an operator may look at)."""
        self._note(details)

    def _note(self, details: Any) -> None:
        if details != self.details:
            self._moved_at = time.monotonic()
        self.details = details

    def _loop(self, interval_s: float) -> None:
        ticked = time.monotonic()
        while not self._stop.wait(interval_s):
            if activity.is_cancelled():
                return
            now = time.monotonic()
            if now - ticked > 2 * interval_s + 1:  # the whole process was paused (SIGSTOP, a frozen VM):
                self._moved_at += now - ticked - interval_s  # not the step's doing
            ticked = now
            if riding_out(self._step_thread):  # waiting out a storage outage is not a stall
                self._moved_at = now
            if self._stall_s is not None and time.monotonic() - self._moved_at > self._stall_s:
                self._give_up()
                return
            activity.heartbeat(*([self.details] if self.details is not None else []))

    def _give_up(self) -> None:
        self.stalled = True
        self._log.warning("stage.stalled", no_progress_s=self._stall_s, details=self.details)
        _raise_in_thread(self._step_thread, StallInterrupt)
        if not self._stop.wait(self._stall_s or 0) and self._on_stuck:
            self._on_stuck(
                f"a step made no progress for {self._stall_s:.0f} s and did not stop in as long "
                f"again (at {self.details})"
            )


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """CPython's way to stop a thread: ``exc_type`` is raised there at its next bytecode
    (the SDK cancels a sync activity alike); a thread stuck in native code never gets it."""
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


def heartbeat_interval(info: activity.Info) -> float:
    """A few beats per heartbeat timeout, so one late beat never times an attempt out."""
    timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 60.0
    return min(10.0, max(0.5, timeout / 4))


@dataclass
class StageContext:
    log: structlog.stdlib.BoundLogger
    heart: Heartbeater
    audio_s: float = 0.0  # audio the stage processed (set by it; 0 when it reused a result)


@contextlib.contextmanager
def stage(
    rt: Runtime, name: str | None = None, video_id: str | None = None, watch_progress: bool = False
) -> Iterator[StageContext]:
    """Bind log context, keep the activity heartbeating, and map typed errors.

    ``name`` is a video's stage (``core.contracts.stages.Stage``); any other activity goes by its
    own name, so log lines and metric labels spell it as the worker registered it.
    ``watch_progress`` (a sync activity whose details are its progress): a step whose
    progress stops for ``settings.stall_s`` fails ``Stalled`` (see ``Heartbeater``).

    Typed pipeline errors become ApplicationErrors whose ``type`` is the class name
    (the ErrorType the operator sees). Each outcome lands in the worker's metrics.
    """
    info = activity.info()
    name = name or info.activity_type
    log = structlog.get_logger("activity").bind(
        workflow_id=info.workflow_id,
        **({"video_id": video_id} if video_id else {}),
        activity=name,
        attempt=info.attempt,
        worker_id=rt.worker_id,
    )
    heart = Heartbeater(
        heartbeat_interval(info),
        stall_s=rt.settings.stall_s if watch_progress else None,
        on_stuck=rt.health.fail,
        log=log,
    )
    if not info.is_local:  # a local activity (the upload) lives and dies with its workflow task
        heart.start()
    started = time.perf_counter()
    log.info("stage.started")
    ctx = StageContext(log, heart)
    try:
        yield ctx
        seconds = time.perf_counter() - started
        log.info("stage.done", seconds=round(seconds, 3))
        if ctx.audio_s:
            metrics.record_stage_done(name, rt.gpu_class, ctx.audio_s, seconds)
    except (PipelineError, StallInterrupt) as caught:
        from activities.errors import to_application_error

        exc = (
            caught
            if isinstance(caught, PipelineError)
            else Stalled(f"no progress for {rt.settings.stall_s:.0f} s (at {heart.details})")
        )
        log.warning("stage.failed", error_type=type(exc).__name__, error=str(exc))
        metrics.record_stage_failed(name, rt.gpu_class, type(exc).__name__)
        raise to_application_error(exc, rt.settings.rate_limit_backoff_s) from None
    except BaseException as exc:
        error_type = exc.type if isinstance(exc, ApplicationError) and exc.type else type(exc).__name__
        if isinstance(exc, CancelledError):  # Temporal gave this attempt up (timed out, or cancelled)
            details = activity.cancellation_details()
            log.warning(
                "stage.cancelled",
                reason=_cancel_reason(details),
                seconds=round(time.perf_counter() - started, 3),
            )
        else:
            log.warning("stage.failed", error_type=error_type, error=str(exc)[:300])
        metrics.record_stage_failed(name, rt.gpu_class, error_type)
        raise
    finally:
        heart.stop()


def _cancel_reason(details: activity.ActivityCancellationDetails | None) -> str:
    if details is None:
        return "unknown"
    flags = ("not_found", "cancel_requested", "paused", "timed_out", "worker_shutdown", "reset")
    return ",".join(f for f in flags if getattr(details, f, False)) or "unknown"


@contextlib.contextmanager
def scratch_dir(rt: Runtime, video_id: str) -> Iterator[Path]:
    """A per-attempt local folder, removed whatever happens (but a kill: see sweep_scratch)."""
    base = rt.settings.work_dir
    base.mkdir(parents=True, exist_ok=True)
    owner = process_identity(os.getpid())
    path = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{owner}-{video_id}-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


SCRATCH_PREFIX = "scratch-"
LEGACY_SCRATCH_PREFIX = "pid"  # folders named by PID alone, before process identities


def process_identity(pid: int) -> str | None:
    """``boot.pid.start``: one process among all this machine ran, unlike a PID, which a
    restarted container hands its new worker again (so a killed worker's scratch looked
    alive for ever). ``start`` is the process's start time in clock ticks since boot
    (/proc/PID/stat field 22); ``boot`` tells boots apart. None: no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    start = stat.rsplit(")", 1)[1].split()[19]  # fields after the command name start at 3
    return f"{_boot_id()}.{pid}.{start}"


@functools.cache
def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]


def sweep_scratch(base: Path) -> list[str]:
    """Remove scratch folders whose worker process is gone (killed before its cleanup
    ran: a 6-hour video leaves gigabytes). Folders of live processes sharing ``base``
    stay; so does anything this module did not make. Scratch is one machine's: a
    folder of another boot is a dead process's."""
    swept = []
    for path in sorted(base.iterdir()) if base.is_dir() else []:
        if path.is_dir() and _owner_is_gone(path.name):
            shutil.rmtree(path, ignore_errors=True)
            swept.append(path.name)
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _owner_is_gone(name: str) -> bool:
    if name.startswith(LEGACY_SCRATCH_PREFIX):
        pid = name[len(LEGACY_SCRATCH_PREFIX) :].split("-", 1)[0]
        return pid.isdigit() and not _alive(int(pid))
    if not name.startswith(SCRATCH_PREFIX):
        return False
    owner = name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
    parts = owner.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    return process_identity(int(parts[1])) != owner


def load_analysis_audio(rt: Runtime, audio: AudioRef, workdir: Path) -> tuple[np.ndarray, int]:
    """Fetch the 16 kHz analysis copy from storage into memory."""
    path = rt.store.download_file(audio.analysis_key, workdir / "analysis_16k.wav")
    return load_wav(path)
