"""The fleet simulation prints both designs and a projection, and its model agrees in
kind with the real orchestration (tiny sizes; the closing notes carry the full runs).
Asserted: well-formed figures and one property of the design (overlapping downloads
with GPU work keeps the GPU busier than downloading in turn), never a fitted figure."""

import re

import pytest

from tests.conftest import run_cli

BUSY = re.compile(
    r"^(pipelined|serial)\s+([\d.]+) h\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", re.MULTILINE
)


def test_simulation_prints_both_designs_and_projection():
    result = run_cli("-m", "benchmarks.fleet", "--gpus", "8", "--videos", "300", "--window", "40",
                     "--download-slots", "8", "--upload-slots", "4", "--preempt-per-gpu-hour", "0.2", timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {m.group(1): [float(x) for x in m.groups()[1:]] for m in BUSY.finditer(result.stdout)}
    assert set(rows) == {"pipelined", "serial"}, result.stdout
    for makespan, busy, warm, videos_h, audio_h in rows.values():
        assert makespan > 0 and videos_h > 0 and audio_h > 0
        assert 0 < busy <= 1 and 0 < warm <= 1
    assert rows["pipelined"][1] > rows["serial"][1], result.stdout
    projection = re.compile(
        r"^projection (pipelined|serial)\s+([\d.]+) days\s+[\d,]+ GPU-h\s+\$\s*([\d,]+)", re.MULTILINE
    )
    projections = projection.findall(result.stdout)
    assert {p[0] for p in projections} == {"pipelined", "serial"}, result.stdout
    assert all(float(days) > 0 and float(dollars.replace(",", "")) > 0 for _, days, dollars in projections)


@pytest.mark.integration
def test_validate_against_real_orchestration():
    result = run_cli(
        "-m", "benchmarks.fleet", "--validate", "--videos", "12", "--validate-seconds", "8", timeout=80
    )
    assert result.returncode == 0, result.stdout + result.stderr
    simulated = re.search(r"^simulated\s+([\d.]+)", result.stdout, re.MULTILINE)
    real = re.search(r"^real orchestration\s+([\d.]+)", result.stdout, re.MULTILINE)
    assert simulated and real, result.stdout
    assert 0 < float(simulated.group(1)) <= 1 and 0 < float(real.group(1)) <= 1


def test_deployed_cpu_workers_keep_150_gpus_fed():
    """The default fleet is deploy/k8s's CPU workers at their replica ceiling: a change
    there (fewer pods, fewer download slots) that starves the GPUs fails here."""
    result = run_cli("-m", "benchmarks.fleet", "--gpus", "150", "--videos", "2000", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(bottleneck: GPU)" in result.stdout, result.stdout
