"""The orchestration, starter, workflow-worker, contention, clustering and who-is-who
benchmarks run and print well-formed figures (tiny sizes here; the closing notes carry
the full runs). No figure is asserted."""

import re

import pytest

from benchmarks.longform import EVAL
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


def test_workflow_worker_benchmark_loads_no_heavy_library():
    result = run_cli("-m", "benchmarks.workflow_worker", "--runs", "1", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"resident memory\s+\d+ MiB", result.stdout), result.stdout
    heavy = re.search(r"heavy libraries\s+(.+)$", result.stdout, re.MULTILINE)
    assert heavy and "torch" not in heavy.group(1) and "boto3" not in heavy.group(1), result.stdout


def test_contention_benchmark_times_every_model_under_both_policies():
    result = run_cli("-m", "benchmarks.contention", "--minutes", "1", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(
        r"^(segmentation-3.0|CAM\+\+ trunk|DNSMOS).*?([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$",
        result.stdout,
        re.MULTILINE,
    )
    assert len(rows) == 6 and all(float(x) > 0 for row in rows for x in row[1:4]), result.stdout


def test_clustering_benchmark_times_a_tiled_episode():
    """One minute of the podcast extracted, laid end to end to 0.1 h, clustered in a fresh process."""
    result = run_cli("-m", "benchmarks.clustering", "--source-minutes", "1", "--hours", "0.1", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    episode = re.search(r"episode (\d+\.\d+) h: (\d+) local speakers, (\d+) clean", result.stdout)
    assert episode and float(episode.group(1)) >= 0.1, result.stdout
    assert int(episode.group(2)) >= int(episode.group(3)) > 0, result.stdout
    for step in ("cluster", "finish"):
        assert re.search(
            rf"^   {step}\s+[\d.]+ s wall\s+[\d.]+ s CPU  peak \+-?\d+ MiB", result.stdout, re.M
        ), result.stdout
    assert re.search(
        r"^clustering: \d+\.\d+ h, \d+ local speakers, [\d.]+ s, \+-?\d+ MiB \(goal", result.stdout, re.M
    )


def test_who_is_who_benchmark_scores_each_setting_from_cached_features(tmp_path):
    """The dev set's features extracted once into the cache, then scored under two settings."""
    cache = tmp_path / "cache"
    result = run_cli(
        "-m", "benchmarks.who_is_who", "--sets", "dev", "--cache", str(cache),
        "--set", "MERGE_SIMILARITY=0.8,0.95", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = re.findall(
        r"^who-is-who: MERGE_SIMILARITY=(\S+): dev ([\d.]+)/([\d.]+) (\d)/(\d)", result.stdout, re.M
    )
    assert [line[0] for line in lines] == ["0.8", "0.95"], result.stdout
    files = len(list((EVAL / "diarization" / "rttm").glob("*.rttm")))
    assert all(0 < float(der) < 100 and int(n) == files for _, der, _, _, n in lines), result.stdout
    assert len(list((cache / "features" / "dev").glob("*.pkl"))) == files
    refused = run_cli("-m", "benchmarks.who_is_who", "--set", "NO_SUCH_KNOB=1", timeout=120)
    assert refused.returncode == 2 and "NO_SUCH_KNOB" in refused.stderr
