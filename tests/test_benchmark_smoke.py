"""The orchestration and starter benchmarks run and print well-formed figures
(tiny sizes here; the closing notes carry the full runs). No figure is asserted."""

import re

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_orchestration_benchmark_prints_both_rates():
    result = run_cli("-m", "benchmarks.orchestration", "--videos", "20", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rates = re.findall(r"([\d.]+) starts/s\s+([\d.]+) workflows/s", result.stdout)
    assert len(rates) == 2 and all(float(r) > 0 for pair in rates for r in pair)
    assert re.search(r"ratio pipeline/bare\s+:\s+[\d.]+", result.stdout)


def test_starter_benchmark_validates_and_pages_through():
    result = run_cli("-m", "benchmarks.starter", "--rows", "20000", "--page-through", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "19998 valid, 2 invalid (expected 2)" in result.stdout
    assert re.search(r"paged through 19998 rows", result.stdout)
    assert re.search(r"peak memory of the starter process: \d+ MB", result.stdout)
