"""The real NVML detection code, handed the answers of real GPUs.

The NVML side is injected (there is no GPU here): a stand-in module answering the
nvidia-ml-py calls the way a T4, an A100 80 GB, a mixed machine or a machine without
a driver does. Everything after the NVML calls is the production code.
"""

import asyncio
from types import SimpleNamespace

import pytest

from core.contracts.gpu_profiles import PROFILES, class_for_duration, next_class, profile_for
from workers.gpu import GpuInfo, classify, detect_gpus, machine_class

GIB = 2**30


class FakeNvml:
    """NVML answers for a list of (name, total bytes, compute capability)."""

    class NVMLError(Exception):
        pass

    def __init__(self, devices, init_error=False):
        self.devices = devices
        self.init_error = init_error
        self.shutdown_called = False

    def nvmlInit(self):
        if self.init_error:
            raise self.NVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        self.shutdown_called = True

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return self.devices[h][0].encode()  # older nvml-py returns bytes

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=self.devices[h][1], free=self.devices[h][1], used=0)

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return self.devices[h][2]


T4 = ("Tesla T4", 15_360 * 2**20, (7, 5))
A100_80 = ("NVIDIA A100-SXM4-80GB", 80 * GIB, (8, 0))
A100_40 = ("NVIDIA A100-PCIE-40GB", 40 * GIB, (8, 0))
A10 = ("NVIDIA A10G", 24 * GIB, (8, 6))
L40S = ("NVIDIA L40S", 48 * GIB, (8, 9))


@pytest.mark.parametrize(
    "devices, expected",
    [([T4], "t4"), ([A100_80], "a100-80"), ([A100_40], "a100-40"), ([A10], "a10"), ([L40S], "a100-40")],
)
def test_single_gpu_class_and_profile(devices, expected):
    nvml = FakeNvml(devices)
    gpus = detect_gpus(nvml)
    assert len(gpus) == 1 and nvml.shutdown_called
    assert gpus[0].compute_capability == devices[0][2]
    assert machine_class(gpus) == expected


def test_t4_profile_and_a100_80_profile():
    t4 = profile_for(machine_class(detect_gpus(FakeNvml([T4]))))
    assert (t4.embedding_batch, t4.gpu_slots) == (128, 1)
    big = profile_for(machine_class(detect_gpus(FakeNvml([A100_80]))))
    assert (big.embedding_batch, big.gpu_slots) == (754, 2)


def test_two_mixed_gpus_take_the_smaller_class():
    gpus = detect_gpus(FakeNvml([A100_80, T4]))
    assert [g.index for g in gpus] == [0, 1]
    assert machine_class(gpus) == "t4"


def test_nvml_missing_is_a_cpu_machine():
    assert detect_gpus(FakeNvml([], init_error=True)) == []
    assert machine_class([]) == "cpu"
    assert profile_for("cpu").gpu_class == "cpu"


def test_unknown_gpu_goes_by_memory():
    assert classify(GpuInfo(0, "Some Future GPU", 100.0, (10, 0))) in {"a100-80", "h100"}
    assert classify(GpuInfo(0, "Tiny GPU", 8.0, (6, 1))) == "cpu"


def test_escalation_ladder_and_duration_rule():
    assert next_class("t4") == "a10" and next_class("a100-80") is None
    assert class_for_duration("t4", 3600) == "t4"
    assert class_for_duration("t4", 5 * 3600) == "a10"  # longer than a T4 takes
    assert class_for_duration("t4", 30 * 3600) == "a100-80"  # top of the ladder
    assert all(
        profile_for(c).max_audio_h <= profile_for(n).max_audio_h
        for c, n in [("t4", "a10"), ("a10", "a100-40"), ("a100-40", "a100-80")]
    )
    assert set(PROFILES) >= {"cpu", "t4", "a10", "l4", "a100-40", "a100-80", "h100"}


class BusyNvml(FakeNvml):
    """NVML answers of GPUs at work: utilisation % and bytes in use per device."""

    def __init__(self, devices, utilization, used):
        super().__init__(devices)
        self.utilization, self.used = utilization, used

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self.utilization[h], memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(
            total=self.devices[h][1], free=self.devices[h][1] - self.used[h], used=self.used[h]
        )


def test_gpu_utilization_and_memory_reach_the_metrics_endpoint():
    """The worker's real sampler and the SDK's real Prometheus exporter; NVML injected."""
    from core.service.settings import Settings
    from devstack.stack import free_port
    from tests.conftest import metric_total, scrape_metrics
    from workers.telemetry import sample_gpus, telemetry_runtime

    address = f"127.0.0.1:{free_port()}"
    telemetry = telemetry_runtime(Settings(metrics_address=address))
    nvml = BusyNvml([A100_80, T4], utilization=[87, 12], used=[40 * GIB, 3 * GIB])

    async def sample_then_scrape():
        sampler = asyncio.create_task(sample_gpus(telemetry.metric_meter, nvml, every_s=0.05))
        await asyncio.sleep(0.5)
        samples = await asyncio.to_thread(scrape_metrics, address)
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        return samples

    samples = asyncio.run(sample_then_scrape())
    for gpu, busy, used in [("0", 87, 40 * GIB), ("1", 12, 3 * GIB)]:
        assert metric_total(samples, "pipeline_gpu_utilization_percent", gpu=gpu) == busy
        assert metric_total(samples, "pipeline_gpu_memory_used_bytes", gpu=gpu) == used
    assert nvml.shutdown_called, "NVML is released when the worker stops"


def test_gpu_sampler_returns_at_once_without_nvml():
    from temporalio.common import MetricMeter

    from workers.telemetry import sample_gpus

    asyncio.run(asyncio.wait_for(sample_gpus(MetricMeter.noop, FakeNvml([], init_error=True)), timeout=1))


def test_a_metrics_address_in_use_leaves_the_worker_without_metrics():
    import socket

    from core.service.settings import Settings
    from workers.telemetry import telemetry_runtime

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        assert telemetry_runtime(Settings(metrics_address=address)) is None
    assert telemetry_runtime(Settings(metrics_address=None)) is None


@pytest.mark.parametrize(
    "current, wanted, served, policy, must_move, chosen",
    [
        ("t4", "a10", ["a10"], "largest-served", True, "a10"),  # the next class is served
        ("t4", "a10", ["a100-80"], "largest-served", True, "a100-80"),  # the smallest served above
        ("t4", "a10", [], "largest-served", True, None),  # OOM and nothing above: fail
        ("t4", "a100-40", ["a10"], "largest-served", False, "a10"),  # too long: the largest served below
        ("t4", "a100-40", [], "largest-served", False, "t4"),  # ... or stay, with smaller batches
        ("t4", "a100-40", ["a10"], "fail", False, None),  # the policy says fail
        ("t4", "a100-40", ["a100-80"], "fail", False, "a100-80"),  # a bigger class takes it too
    ],
)
def test_a_video_moves_only_to_a_served_class(current, wanted, served, policy, must_move, chosen):
    from core.contracts.video import Escalation
    from workflows.escalation import choose_class

    assert choose_class(current, wanted, served, Escalation(policy), must_move) == chosen
