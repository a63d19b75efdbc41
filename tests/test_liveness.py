"""Liveness means progress (issue 22): a step whose progress stops fails ``Stalled`` and
frees its slot; one stuck in native code makes the worker leave.

The steps here are the real ``stage`` context every download and model stage runs in,
in temporalio's ActivityEnvironment (an activity context without a server). The hangs
are injected (``core.service.faults.hang``): one in Python, one in a native call that never
returns, as a hung CUDA kernel would.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.attempts import stage
from activities.runtime import Runtime
from core.service import faults
from core.service.settings import Settings


def runtime(stall_s: float) -> Runtime:
    return Runtime(Settings(stall_s=stall_s))


def environment() -> ActivityEnvironment:
    """An activity with a 2 s heartbeat timeout: its beats (and progress checks) every 0.5 s."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=2))
    return env


def test_a_step_whose_progress_stops_fails_stalled_and_returns(monkeypatch):
    """It shows progress twice, then hangs in Python: after ``stall_s`` without new
    details it fails Stalled (typed, retryable) and its thread is free again."""
    monkeypatch.setenv("PIPELINE_FAULT_HANG", "model")
    monkeypatch.setattr(faults, "_hung", set())
    rt = runtime(stall_s=1.5)
    beats: list = []
    env = environment()
    env.on_heartbeat = lambda *details: beats.append(details)

    def step() -> None:
        with stage(rt, "diarize", "vid", watch_progress=True) as ctx:
            for chunk in range(2):
                ctx.heart.show({"chunk": chunk})
                time.sleep(0.6)
            faults.hang("model")

    started = time.monotonic()
    with pytest.raises(ApplicationError) as raised:
        env.run(step)
    took = time.monotonic() - started
    assert raised.value.type == "Stalled" and not raised.value.non_retryable
    assert "no progress for 2 s" in str(raised.value) and "'chunk': 1" in str(raised.value)
    assert 1.5 < took < 8, took
    assert beats, "it heartbeat while it moved"
    assert not rt.health.unhealthy.is_set(), "the step returned: the worker is fine"


def test_progress_that_keeps_moving_is_never_a_stall(monkeypatch):
    """A step slower than ``stall_s`` in all, but moving, runs to its end."""
    rt = runtime(stall_s=1.0)

    def step() -> str:
        with stage(rt, "diarize", "vid", watch_progress=True) as ctx:
            for chunk in range(6):
                ctx.heart.show({"chunk": chunk})
                time.sleep(0.5)
        return "done"

    assert environment().run(step) == "done"


def test_a_step_stuck_in_native_code_makes_the_worker_unhealthy(monkeypatch):
    """The hang is a native wait no exception can end: after ``stall_s`` the interrupt
    is raised and lost, and after as long again the worker's health says leave."""
    monkeypatch.setenv("PIPELINE_FAULT_HANG", "model:native")
    monkeypatch.setattr(faults, "_hung", set())
    rt = runtime(stall_s=1.0)

    def step() -> None:
        with stage(rt, "diarize", "vid", watch_progress=True) as ctx:
            ctx.heart.show({"chunk": 0})
            faults.hang("model")

    stuck = threading.Thread(target=environment().run, args=(step,), daemon=True)
    stuck.start()
    assert rt.health.unhealthy.wait(15), "the worker never gave up on the stuck step"
    assert "no progress for 1 s" in rt.health.reason and stuck.is_alive()
    assert os.environ["PIPELINE_FAULT_HANG"] == "model:native"
