"""What 'usable' means, and the shape of the committed outputs."""

from core.analysis.intervals import subtract
from core.contracts.rttm import rttm_text
from core.contracts.video import MusicRegion, Segment
from core.store.outputs import UsableRules, annotate_segments, usable_seconds


def seg(s, e, spk):
    return Segment(start=s, end=e, speaker=spk)


def test_overlap_and_music_are_cut_out_of_usable_regions():
    segments = [seg(0, 10, "A"), seg(8, 15, "B"), seg(20, 30, "A"), seg(31, 31.5, "B")]
    music = [MusicRegion(start=24, end=26, probability=0.9)]
    rows = annotate_segments(segments, music, UsableRules(min_s=1.0))

    assert rows[0]["overlap"] and not rows[0]["music"]
    assert rows[0]["usable_regions"] == [[0, 8]]
    assert rows[1]["usable_regions"] == [[10, 15]]
    assert rows[2]["music"] and rows[2]["usable_regions"] == [[20, 24], [26, 30]]
    assert not rows[3]["usable"]  # 0.5 s is shorter than the minimum
    assert usable_seconds(rows) == 8 + 5 + 4 + 4


def test_uncertain_spans_are_cut_out_of_usable_regions():
    rows = annotate_segments(
        [seg(0, 10, "A")], [], UsableRules(min_s=1.0), uncertain=[(2, 3), (2.5, 4), (9.5, 12)]
    )
    assert rows[0]["usable_regions"] == [[0, 2], [4, 9.5]] and not rows[0]["overlap"]


def test_same_speaker_overlap_is_not_overlapped_speech():
    rows = annotate_segments([seg(0, 5, "A"), seg(4, 8, "A")], [], UsableRules(min_s=1.0))
    assert not rows[0]["overlap"] and rows[0]["usable_regions"] == [[0, 5]]


def test_subtract_handles_holes_at_edges():
    assert subtract((0, 10), [(0, 2), (9, 12)]) == [(2, 9)]
    assert subtract((0, 10), [(-1, 11)]) == []


def test_rttm_lines():
    text = rttm_text("vid", [seg(1.5, 3.25, "SPEAKER_00")])
    assert text == "SPEAKER vid 1 1.500 1.750 <NA> <NA> SPEAKER_00 <NA> <NA>\n"


def _labels(**given):
    base = {
        "dnsmos_ovrl": 3.1,
        "snr_db": 25.0,
        "bandwidth_hz": 16000.0,
        "clipping": 0.0,
        "music": 0.0,
        "singing": 0.0,
    }
    return {**base, **given}


def test_labels_are_kept_and_the_usable_policy_decides_on_them():
    from core.contracts.video import UsablePolicy
    from core.store.outputs import quality_summary

    segments = [seg(0, 10, "A"), seg(12, 20, "B"), seg(22, 30, "A"), seg(32, 40, "B")]
    labels = [_labels(), _labels(clipping=0.05), _labels(singing=0.9), _labels(snr_db=None, dnsmos_ovrl=1.2)]
    rows = annotate_segments(segments, [], UsableRules(min_s=1.0), labels=labels)
    assert [row["usable"] for row in rows] == [True, False, False, True]
    assert rows[1]["unusable_by"] == ["max_clipping"] and rows[2]["unusable_by"] == ["max_singing"]
    assert rows[3]["labels"]["snr_db"] is None, "an unmeasured label is kept as None and breaks no bound"
    assert all(row["labels"] == labels[i] for i, row in enumerate(rows)), "labels are kept, never dropped"
    strict = UsableRules(min_s=1.0, policy=UsablePolicy(min_dnsmos_ovrl=2.0))
    assert not annotate_segments(segments, [], strict, labels=labels)[3]["usable"]
    summary = quality_summary(rows)
    assert summary["unusable_s_by"] == {"max_clipping": 8.0, "max_singing": 8.0}
    assert summary["mean"]["snr_db"] == 25.0  # over the segments that have it
    assert abs(summary["mean"]["dnsmos_ovrl"] - (3.1 * 26 + 1.2 * 8) / 34) < 1e-3


def test_rows_without_labels_keep_the_old_shape():
    rows = annotate_segments([seg(0, 10, "A")], [], UsableRules(min_s=1.0))
    assert "labels" not in rows[0] and "unusable_by" not in rows[0] and rows[0]["usable"]


def test_the_sweep_finds_every_overlap_and_hit_that_comparing_every_pair_finds():
    """Six hours hold tens of thousands of turns: overlaps and music or uncertain hits are
    found by a sweep and by bisection, and must be exactly what the plain pairwise
    comparison finds (random turns, shared starts and ends, zero-length ones included)."""
    import random

    from core.analysis.intervals import Disjoint, merge_intervals, overlaps

    rng = random.Random(7)
    segments = []
    for _ in range(400):
        start = round(rng.uniform(0, 600), 1)
        segments.append(
            seg(start, start + round(rng.choice([0, 0.5, 3, 12, 40]) * rng.random(), 1), rng.choice("ABC"))
        )
    segments += [seg(100.0, 110.0, "A"), seg(100.0, 105.0, "B"), seg(105.0, 110.0, "C")]  # shared edges
    for i, (me, found) in enumerate(zip(segments, overlaps(segments))):
        pairwise = merge_intervals(
            [
                (max(me.start, o.start), min(me.end, o.end))
                for j, o in enumerate(segments)
                if j != i and o.speaker != me.speaker and o.start < me.end and o.end > me.start
            ]
        )
        assert found == pairwise, (i, me)
    regions = [(s, s + rng.uniform(0, 20)) for s in (rng.uniform(0, 600) for _ in range(60))]
    disjoint = Disjoint(regions)
    for me in segments:
        expected = [
            (max(me.start, s), min(me.end, e)) for s, e in disjoint.merged if s < me.end and e > me.start
        ]
        assert disjoint.within(me.start, me.end) == expected
