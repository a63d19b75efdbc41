"""``starter status --videos`` as a table an operator reads at a glance: within 100
columns, problems first, running videos by how long they have run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.service.settings import Settings
from starter.status import VideoRow
from starter.watch import output_folder, video_table

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def row(video_id: str, status: str, minutes: float, **fields) -> VideoRow:
    started = NOW - timedelta(minutes=minutes)
    closed = None if status == "Running" else started + timedelta(minutes=minutes / 2)
    values = dict(stage="", num_speakers=None, usable_pct=None, audio_s=None, error_type=None)
    values.update(fields)
    return VideoRow(video_id=video_id, status=status, started=started, closed=closed, **values)


def test_problems_first_then_running_longest_first_then_the_rest():
    rows = [
        row("done-a", "Completed", 10, stage="completed", num_speakers=3, usable_pct=61.25, audio_s=3725.0),
        row("running-short", "Running", 2, stage="diarize+music"),
        row("failed-silent", "Failed", 5, stage="failed", error_type="SilentAudio"),
        row("running-long", "Running", 90, stage="labels"),
        row("failed-gone", "Failed", 5, stage="failed", error_type="StorageUnavailable"),
        row("x" * 64, "Completed", 1, num_speakers=1, usable_pct=0.0, audio_s=8.0),
    ]
    lines = video_table(rows, now=NOW)
    assert lines[0].split() == ["video", "state", "elapsed", "spk", "usable", "audio", "stage/error"]
    order = [line.split()[0] for line in lines[1:]]
    assert order == [
        "failed-silent",
        "failed-gone",
        "running-long",
        "running-short",
        "done-a",
        "x" * 27 + "~",
    ]
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    done = lines[order.index("done-a") + 1].split()
    assert done == ["done-a", "completed", "5:00", "3", "61.2%", "1:02:05", "-"]
    running = lines[order.index("running-long") + 1].split()
    assert running[1:3] == ["running", "1:30:00"] and running[-1] == "labels"  # elapsed until now
    assert lines[1].split()[-1] == "SilentAudio" and lines[2].split()[-1] == "StorageUnavailable"


def test_outputs_are_shown_where_they_are():
    settings = Settings(s3_bucket="speech", s3_prefix="/runs/")
    assert output_folder(settings, "ep01") == "s3://speech/runs/ep01/v2/"
    assert output_folder(Settings(s3_bucket="speech"), "ep01") == "s3://speech/ep01/v2/"


def test_stats_fit_a_100_column_terminal_at_fleet_scale():
    from core.contracts.batch import BatchProgress, ClassUsage
    from starter.watch import format_stats

    p = BatchProgress(
        batch_id="b" * 40,
        total=340_000,
        done=123_456,
        completed=120_000,
        already_completed=2_000,
        skipped=456,
        failed=1_000,
        failed_by_error={"VideoUnavailable": 900, "HostMemoryExhausted": 100},
        running=2_000,
        waiting=214_544,
        paused=False,
        videos_per_h_recent=12_345.6,
        videos_per_h_overall=11_111.1,
        audio_h_per_h_recent=10_246.9,
        audio_h_per_h_overall=9_222.2,
        eta_s=3 * 86400.0,
        per_class={"a100-80": ClassUsage(videos=60_000, audio_s=1.8e8, gpu_s=9e6)},
        elapsed_s=11 * 3600.0,
        runs=42,
    )
    lines = format_stats(p, {"a100-80": 1.2}).splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert "  elapsed 11:00:00, ETA 3.0 days, workflow runs 42" in lines
