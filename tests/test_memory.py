"""The worker's memory: what it may use, how many model slots that holds, and the peak
each stage reports (core.service.memory, core.contracts.gpu_profiles).

Why: a worker runs several stages in one process; its container's limit decides when
the kernel kills it, so slots are sized from that limit and a measured per-slot peak,
and each stage's summary says how high the process went while it ran.
"""

from __future__ import annotations

import time

import numpy as np

from core.contracts import gpu_profiles
from core.service import memory


def test_the_limit_is_the_containers_else_the_machines(tmp_path):
    v2, v1, meminfo = tmp_path / "memory.max", tmp_path / "limit_in_bytes", tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24576000 kB\nMemFree:         1000 kB\n")
    v2.write_text(f"{6 << 30}\n")
    assert memory.limit_mib(v2, v1, meminfo) == 6 * 1024
    v2.write_text("max\n")  # cgroup v2 without a limit: v1, else the machine
    v1.write_text(f"{9223372036854771712}\n")  # v1's "no limit"
    assert memory.limit_mib(v2, v1, meminfo) == 24576000 / 1024
    v1.write_text(f"{3 << 30}\n")
    assert memory.limit_mib(v2, v1, meminfo) == 3 * 1024
    assert memory.limit_mib(tmp_path / "none", tmp_path / "none", tmp_path / "none") == 0.0
    assert memory.limit_mib() > 0  # this machine's


def test_slots_are_as_many_as_the_memory_holds_at_the_measured_peak():
    for wanted in (1, 2, 4):
        need = gpu_profiles.host_memory_mib(wanted)
        assert need > gpu_profiles.host_memory_mib(wanted - 1)
        assert gpu_profiles.slots_that_fit(need, wanted) == wanted
        assert gpu_profiles.slots_that_fit(need * 10, wanted) == wanted  # never more than the profile's
        if wanted > 1:
            assert gpu_profiles.slots_that_fit(need - 1, wanted) == wanted - 1
    assert gpu_profiles.slots_that_fit(100, 2) == 1  # too little for one: one, and its guard
    assert gpu_profiles.slots_that_fit(0, 2) == 2  # unknown: the profile's


def test_a_stage_sees_the_peak_of_memory_it_held_and_gave_back():
    watch = memory.watch()
    try:
        held = np.ones(300 << 18, dtype=np.float32)  # 300 MiB, touched
        time.sleep(5 * memory.SAMPLE_S)
        del held
        assert memory.status_mib() < watch.start_mib + 200
        assert watch.peak_mib() >= watch.start_mib + 280
    finally:
        memory.done(watch)
    later = memory.watch()  # a stage that starts afterwards does not inherit that peak
    try:
        assert later.peak_mib() < watch.start_mib + 200
    finally:
        memory.done(later)
