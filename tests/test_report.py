"""The yield report's arithmetic on committed metadata of known shape."""

from __future__ import annotations

from core.contracts.clips import ClipPolicy
from core.contracts.metadata import Metadata
from starter.report import _hours, build_report, render_png, summary_lines
from starter.status import VideoRow


def meta(
    video_id: str,
    duration_s: float,
    segments: list[tuple[float, float, str, float | None]],
    music=(),
    language: tuple[str, float] | None = None,
    speakers: dict[str, tuple[str, float]] | None = None,
):
    rows = [
        {
            "start": s,
            "end": e,
            "speaker": spk,
            "overlap": False,
            "music": False,
            "usable": True,
            "usable_regions": [[s, e]],
            "labels": {"dnsmos_ovrl": ovrl},
        }
        for s, e, spk, ovrl in segments
    ]
    return Metadata.model_validate(
        {
            "video_id": video_id,
            "batch_id": "b",
            "duration_s": duration_s,
            "num_speakers": len({r[2] for r in segments}),
            "segments": rows,
            "music": [{"start": s, "end": e, "probability": 0.9} for s, e in music],
            **({"language": {"language": language[0], "probability": language[1]}} if language else {}),
            "speakers": {
                name: {"language": {"language": code, "probability": p}}
                for name, (code, p) in (speakers or {}).items()
            },
        }
    )


def row(video_id: str, status: str, error_type: str | None = None) -> VideoRow:
    return VideoRow(video_id, status, "", None, None, None, error_type)


def test_hours_buckets_failures_and_cost():
    metas = [
        meta(
            "a",
            3600.0,
            [(0, 1800, "S0", 3.4), (1800, 2700, "S1", 2.0)],
            music=[(2700, 3600)],
            language=("en", 0.8),
            speakers={"S0": ("de", 0.9)},  # S1 was not heard: the video's language
        ),
        # overlapping turns; S0 heard, but unsure (under SURE_P), S1 and the video not heard
        meta("b", 1800.0, [(0, 900, "S0", None), (600, 1200, "S1", 3.1)], speakers={"S0": ("fr", 0.3)}),
    ]
    stats = [
        {"gpu_class": "t4", "stage_compute_s": {"diarize": 1800.0, "embed": 1800.0}},
        {"gpu_class": "cpu", "stage_compute_s": {"download": 360.0}},
    ]
    rows = [
        row("a", "Completed"),
        row("b", "Completed"),
        row("c", "Failed", "TooLong"),
        row("d", "Failed", "TooLong"),
    ]
    exports = [{"spec": {"format": "webdataset", "view": "clips"}, "totals": {"audio_s": 1800.0}}]
    linked = [{"S0": "spk_host", "S1": "spk_guest"}, {"S0": "spk_host"}]  # b's S1 not linked yet
    report = build_report("b", rows, metas, stats, exports, {"t4": 0.5}, ClipPolicy(), linked)
    assert report["hours"]["in"] == 1.5
    assert report["hours"]["speech"] == round(0.75 + 1200 / 3600, 3)  # overlapping turns counted once
    assert report["hours"]["usable"] == round((2700 + 900 + 600) / 3600, 3)
    assert report["hours"]["exported"] == {"webdataset/clips": 0.5}
    assert report["usable_hours_by_dnsmos"] == {
        "<2.5": 0.25,
        "2.5-3.0": 0.0,
        "3.0-3.3": round(600 / 3600, 3),
        ">=3.3": 0.5,
        "unlabelled": 0.25,
    }
    assert report["usable_hours_by_language"] == {"de": 0.5, "unknown": round(1500 / 3600, 3), "en": 0.25}
    spread = report["hours_per_speaker"]
    assert spread["top"] == [["spk_host", 0.75], ["spk_guest", 0.25]]  # 1800 + 900 s, and 900 s
    assert (spread["speakers"], spread["linked_usable_h"]) == (2, 1.0)
    assert spread["unlinked_usable_h"] == round(600 / 3600, 3) and spread["top_1pct_share"] == 0.75
    assert spread["histogram_h"]["counts"] == [0, 1, 1, 0, 0, 0, 0, 0]  # 0.25 h and 0.75 h
    assert report["failures_by_type"] == {"TooLong": 2} and report["videos"] == {"Completed": 2, "Failed": 2}
    assert report["compute"]["cost_usd"] == 0.5  # 1 t4-hour at $0.50; CPU hours are priced 0 here
    assert abs(report["compute"]["cost_per_usable_hour_usd"] - 0.5 / report["hours"]["usable"]) < 1e-3
    assert report["histograms"]["speakers_per_video"] == {2: 2}
    assert report["histograms"]["music_share_pct"]["counts"] == [1, 0, 0, 0, 1, 0]  # 0 % and 25 %
    clip_counts = report["histograms"]["clip_s"]["counts"]
    assert sum(clip_counts) == report["clips"]["count"] > 0 and clip_counts[0] == 0, "no clip under 3 s"
    assert render_png(report).startswith(b"\x89PNG")
    lines = summary_lines(report, "exports/b/report.png")
    assert lines[0] == "batch b: videos: completed 2, failed 2"
    assert "  usable by language: de 30:00 min, unknown 25:01 min, en 15:00 min" in lines  # 0.417 h
    assert "  speakers per video: 2 (2 videos)" in lines
    assert (
        "  usable per global speaker: 2 speakers, 1:00 h; the top 1 % hold 75 %; most: spk_host 45:00 min; "
        "unlinked 10:01 min"
    ) in lines and "  failures: TooLong 2" in lines
    assert not any("{" in line for line in lines), lines  # for people: no Python dicts


def test_hours_read_alike_in_the_summary_and_on_the_figure():
    """m:ss under an hour, h:mm under a hundred, whole hours beyond; 0 for nothing."""
    assert [_hours(h) for h in (0, 38 / 3600, 0.5, 1.5 + 30 / 3600, 99.99, 1234.4)] == [
        "0",
        "0:38 min",
        "30:00 min",
        "1:30 h",
        "99:59 h",
        "1,234 h",
    ]


def test_a_batch_that_yielded_nothing_says_none():
    report = build_report("none", [row("c", "Failed", "SilentAudio")], [], [], [], {}, ClipPolicy())
    lines = summary_lines(report, "exports/none/report.png")
    assert lines[0] == "batch none: videos: failed 1"
    assert "  speakers per video: none" in lines and "  failures: SilentAudio 1" in lines
    assert lines[1].startswith("  hours: in 0, speech 0, usable 0") and "compute: none" in lines[-2]
    assert render_png(report).startswith(b"\x89PNG")  # every panel but failures says "none"
