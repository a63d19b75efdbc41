"""Per-attempt scratch folders on the worker's disk, and the sweep of those a killed
worker left behind (a 6-hour video leaves gigabytes)."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from activities.runtime import Runtime


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
