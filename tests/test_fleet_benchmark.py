"""The fleet simulation prints both designs and a projection, and its model agrees with
the real orchestration (tiny sizes; the closing notes carry the full runs). Asserted:
well-formed figures, one property of the design (overlapping downloads with GPU work
keeps the GPU busier than downloading in turn), and the simulated GPU busy fraction
against the one measured on the real workflow, within a stated tolerance."""

import re

import pytest

from tests.conftest import run_cli

BUSY = re.compile(
    r"^(pipelined|serial)\s+([\d.]+) h\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", re.MULTILINE
)


def test_simulation_prints_both_designs_and_projection():
    result = run_cli(
        "-m",
        "benchmarks.fleet",
        "--gpus",
        "8",
        "--videos",
        "300",
        "--window",
        "40",
        "--download-slots",
        "8",
        "--commit-slots",
        "4",
        "--preempt-per-gpu-hour",
        "0.2",
        timeout=60,
    )
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


# Real over simulated GPU-slot busy fraction, --validate on 12 videos in 16 s: measured
# 0.84-1.06 here (2 shared cores, load 2-16). Mostly the real run is less busy, by the
# dispatch latency the model leaves out (~10-150 ms per activity, which weighs more the
# more the clock is compressed); once it finished sooner than the model (1.055). A quarter
# each way is the tolerance; a model that drifts from the workflow fails it (one GPU slot
# where the model has two gave 0.55).
REAL_OVER_SIMULATED = (0.75, 1.25)


@pytest.mark.integration
def test_validate_against_real_orchestration():
    """The real VideoWorkflow on the embedded Temporal stack, stand-in activities sleeping
    the simulated stage durations, keeps the GPU slots as busy as the simulation says,
    within REAL_OVER_SIMULATED: a model that drifts from the workflow (say, in its slot
    count) fails here."""
    result = run_cli(
        "-m", "benchmarks.fleet", "--validate", "--videos", "12", "--validate-seconds", "16", timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    simulated = re.search(r"^simulated\s+([\d.]+)", result.stdout, re.MULTILINE)
    real = re.search(r"^real orchestration\s+([\d.]+)", result.stdout, re.MULTILINE)
    assert simulated and real, result.stdout
    simulated, real = float(simulated.group(1)), float(real.group(1))
    assert 0 < simulated <= 1 and 0 < real <= 1
    low, high = REAL_OVER_SIMULATED
    assert low <= real / simulated <= high, f"real {real:.3f} vs simulated {simulated:.3f}:\n{result.stdout}"


def test_deployed_cpu_workers_keep_150_gpus_fed():
    """The default fleet is deploy/k8s's CPU workers at their replica ceiling: a change
    there (fewer pods, fewer download slots) that starves the GPUs fails here."""
    result = run_cli("-m", "benchmarks.fleet", "--gpus", "150", "--videos", "2000", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(bottleneck: GPU)" in result.stdout, result.stdout
