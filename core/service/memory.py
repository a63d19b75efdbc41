"""How much memory this process holds, and held at its highest while a stage ran.

A worker runs several stages at once (its slots) in one process, so no stage has a
memory figure of its own: what a stage reports is the process's resident memory when
it started and at its highest while it ran, the stages beside it included. That is
what the kernel's OOM killer and a pod's memory limit judge, and what a slot's budget
(``core.contracts.gpu_profiles``) is measured from.

The highest value comes from two sources: a sampler thread (every SAMPLE_S, while any
stage is watched) and the kernel's own high-water mark (VmHWM), which catches peaks
between samples: if it rose while the stage ran, the process's peak fell inside it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

SAMPLE_S = 0.2
CGROUP_V2_MAX = Path("/sys/fs/cgroup/memory.max")
CGROUP_V1_LIMIT = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
MEMINFO = Path("/proc/meminfo")
NO_LIMIT_BYTES = 1 << 60  # cgroup v1 writes a number near 2^63 for "no limit"
# A model stage finding the worker past this share of its limit stops before its next
# chunk (HostMemoryExhausted): the rest is the kernel's margin before it kills the worker.
MEMORY_GUARD_SHARE = 0.9


def status_mib(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A memory figure of /proc/<pid>/status, MiB (VmRSS: resident now; VmHWM: the peak
    resident so far); 0 where /proc has none (not Linux)."""
    return _status(pid).get(field, 0.0)


def _status(pid: int | str = "self") -> dict[str, float]:
    """Every memory figure (Vm*) of /proc/<pid>/status in one read, MiB."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {
        name: int(rest.split()[0]) / 1024
        for name, _, rest in (line.partition(":") for line in lines)
        if name.startswith("Vm") and rest.split()
    }


def limit_mib(
    cgroup_v2: Path = CGROUP_V2_MAX, cgroup_v1: Path = CGROUP_V1_LIMIT, meminfo: Path = MEMINFO
) -> float:
    """The memory this process may use before the kernel kills it, MiB: its container's
    limit (cgroup v2, else v1), else the machine's memory; 0 where none can be read."""
    for path in (cgroup_v2, cgroup_v1):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < NO_LIMIT_BYTES:
            return int(text) / (1 << 20)
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Watch:
    """One stage's view of the process's memory: at its start, and at its highest since."""

    def __init__(self) -> None:
        now = _status()
        self.start_mib = now.get("VmRSS", 0.0)
        self._hwm_at_start = now.get("VmHWM", 0.0)
        self._highest = self.start_mib

    def see(self, mib: float) -> None:
        self._highest = max(self._highest, mib)

    def peak_mib(self) -> float:
        now = _status()
        hwm = now.get("VmHWM", 0.0)
        seen = max(self._highest, now.get("VmRSS", 0.0))
        return round(max(seen, hwm) if hwm > self._hwm_at_start else seen, 1)


class _Sampler:
    """One daemon thread per process, sampling while any Watch is open."""

    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def open(self) -> Watch:
        watch = Watch()
        with self._lock:
            self._watches.add(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
                self._thread.start()
        return watch

    def close(self, watch: Watch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            with self._lock:
                watches = list(self._watches)
                if not watches:
                    self._thread = None
                    return
            now = status_mib()
            for watch in watches:
                watch.see(now)
            time.sleep(SAMPLE_S)


_SAMPLER = _Sampler()


def watch() -> Watch:
    """Start watching the process's memory for one stage; ``done`` it when the stage ends."""
    return _SAMPLER.open()


def done(watch: Watch) -> None:
    _SAMPLER.close(watch)
