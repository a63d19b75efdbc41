"""The chaos benchmark, small: workers killed with SIGKILL at random during a batch.

``python -m benchmarks.chaos`` audits the storage server itself (one committed
metadata.json per video, committed by the run that completed it); here it runs on a
few videos so the suite stays quick. The closing figure comes from a 30-video run.
"""

import re

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_chaos_loses_and_duplicates_nothing(tmp_path):
    result = run_cli("-m", "benchmarks.chaos", "--videos", "5", "--kill-every", "8", "--data-dir", str(tmp_path),
                     timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    line = re.search(r"chaos: (\d+) completed, (\d+) lost, (\d+) duplicated, (\d+) kills", result.stdout)
    assert line, result.stdout
    completed, lost, duplicated, kills = map(int, line.groups())
    assert (completed, lost, duplicated) == (5, 0, 0)
    assert kills >= 1, "at least one worker was killed mid-batch"
