"""Heartbeats that carry a step's progress, and the watch that stops a step whose
progress has stopped (``Heartbeater``); ``activities/attempts.py`` runs one per attempt."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from temporalio import activity

from core.store.errors import riding_out


class StallInterrupt(BaseException):
    """Raised into a step's thread whose progress stopped (``Heartbeater``); ``stage``
    turns it into ``Stalled``. A BaseException, so no ``except Exception`` swallows it."""


class Heartbeater:
    """Heartbeats the latest details now, and again every few seconds while the stage
    works, so a long step (a slow download, ffmpeg, one model call, clustering, a
    commit) never looks like a dead worker. If the process dies or pauses the beats
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
