"""The chaos benchmark, small: every fault of ``python -m benchmarks.chaos`` in one batch.

Workers SIGKILLed and SIGSTOPped past the heartbeat timeout (then woken: late writers),
a multi-chunk recording, a Temporal server restart and a storage outage, all in one
run; then the benchmark audits the storage server itself (committed once, by the run
that completed the video, files matching metadata.json, nothing left under _work/).
Here it runs on a few videos, one of them a few minutes long, so the suite stays quick;
the closing figure comes from a 30-video run with five long recordings. The audit's
own checks are tried first on a hand-made committed video, sound and then damaged.
"""

import hashlib
import io
import json
import re

import numpy as np
import pytest

from benchmarks.chaos import consistency_problems, work_leftovers
from core.store.objects import ObjectStore
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

VIDEOS = 4
RESTART = re.compile(r"^temporal restart at \d+ s \(\d+ completed\): listening again", re.M)
OUTAGE = re.compile(r"^storage outage at \d+ s \(\d+ completed\): down \d+ s", re.M)
SUMMARY = re.compile(
    r"^chaos: (\d+) completed, (\d+) lost, (\d+) duplicated, (\d+) inconsistent, (\d+) kills, (\d+) pauses, "
    r"(\d+) hostile typed of (\d+)$",
    re.M,
)


def commit_by_hand(store: ObjectStore, video_id: str, rows: int) -> dict:
    """What the commit leaves: four files, then metadata.json naming their sha256."""
    keys = store.keys(video_id)
    vectors = io.BytesIO()
    np.save(vectors, np.zeros((rows, 192), np.float32))
    files = {
        "original.wav": b"RIFF...",
        "embeddings.npy": vectors.getvalue(),
        "diarization.rttm": b"",
        "stats.json": b"{}",
    }
    for name, data in files.items():
        store.put_bytes(f"{keys.root}{name}", data)
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    segments = [[0, 1, "A"], [1, 2, "B"]]
    metadata = {"source": {"sha256": sha["original.wav"]}, "segments": segments, "files": sha}
    store.put_bytes(keys.metadata, json.dumps(metadata).encode())
    return metadata


def test_the_audit_finds_damage_that_a_late_writer_could_leave(servers):
    store = ObjectStore(servers.settings(s3_bucket="chaos-audit"))
    store.ensure_bucket()
    sound = commit_by_hand(store, "sound", rows=2)
    assert consistency_problems(store, "sound", sound) == []
    assert work_leftovers(store) == {}

    damaged = commit_by_hand(store, "damaged", rows=3)  # one row too many
    keys = store.keys("damaged")
    store.put_bytes(keys.original, b"rewritten late")
    store.put_bytes(f"{keys.root}chunk-00003.npz", b"")
    store.put_bytes(f"{keys.work_root}diarize/a-1/diarization.json", b"{}")
    problems = " | ".join(consistency_problems(store, "damaged", damaged))
    assert re.search(r"original.wav sha256 \w+ is not source.sha256", problems)
    assert re.search(r"original.wav sha256 \w+ is not the recorded", problems)
    assert "chunk-00003.npz" in problems, "a file the commit did not make"
    assert "embeddings.npy has 3 rows for 2 segments" in problems
    assert list(work_leftovers(store)) == ["damaged"]


def test_chaos_loses_duplicates_and_corrupts_nothing(tmp_path):
    result = run_cli(
        "-m",
        "benchmarks.chaos",
        "--videos",
        str(VIDEOS),
        "--long-videos",
        "1",
        "--long-minutes",
        "1.5",
        "--kill-every",
        "20",
        "--pause-every",
        "25",
        "--outage-s",
        "20",
        "--data-dir",
        str(tmp_path),
        "--timeout",
        "420",
        "--hostile-pct",
        "25",  # one row of the VIDEOS: a hostile or damaged source, which must end typed
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = SUMMARY.findall(result.stdout)
    assert len(lines) == 1, output
    completed, lost, duplicated, inconsistent, kills, pauses, typed, hostile = map(int, lines[0])
    assert (lost, duplicated, inconsistent) == (0, 0, 0) and completed >= VIDEOS - hostile
    assert typed == hostile >= 1, "the hostile row ended as its case allows"
    assert kills >= 1, "at least one worker was killed mid-stage"
    assert pauses >= 1, "at least one worker was paused past its heartbeat timeout, then woken"
    assert RESTART.search(result.stdout), output
    assert OUTAGE.search(result.stdout), output
    print("\n" + "\n".join(line for line in result.stdout.splitlines() if not line.startswith("[chaos")))
