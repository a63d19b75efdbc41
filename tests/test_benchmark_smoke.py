"""The orchestration and starter benchmarks run and print well-formed figures
(tiny sizes here; the closing notes carry the full runs). No figure is asserted."""

import re

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_orchestration_benchmark_prints_every_rate():
    result = run_cli("-m", "benchmarks.orchestration", "--videos", "20", "--rounds", "2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(r"^  (bare|pipeline).*?\s([\d.]+)\s+([\d.]+)\s+([\d.]+)$", result.stdout, re.MULTILINE)
    assert len(rows) == 3 and all(float(x) > 0 for row in rows for x in row[1:]), result.stdout
    assert re.search(r"ratio pipeline/bare\s+:\s+[\d.]+", result.stdout)
    assert re.search(r"ratio pipeline/bare-another-queue\s+:\s+[\d.]+", result.stdout)


def test_starter_benchmark_validates_and_pages_through():
    result = run_cli("-m", "benchmarks.starter", "--rows", "20000", "--page-through", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "19998 valid, 2 invalid (expected 2)" in result.stdout
    assert re.search(r"paged through 19998 rows", result.stdout)
    assert re.search(r"peak memory of the starter process: \d+ MB", result.stdout)
