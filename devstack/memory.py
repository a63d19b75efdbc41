"""A process's own peak memory, for the benchmarks and tests that bound it.

``getrusage(...).ru_maxrss`` survives ``execve``: a child started by a process that
holds models (a test run) reports that parent's peak. ``VmHWM`` belongs to the address
space exec created, so it is the child's own.
"""

from __future__ import annotations

from pathlib import Path


def own_peak_kib() -> int:
    """This process's peak resident memory since exec, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise OSError("/proc/self/status has no VmHWM")
