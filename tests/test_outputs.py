"""What 'usable' means, and the shape of the committed outputs."""

from core.models import MusicRegion, Segment
from core.outputs import annotate_segments, build_rttm, subtract, usable_seconds


def seg(s, e, spk):
    return Segment(start=s, end=e, speaker=spk)


def test_overlap_and_music_are_cut_out_of_usable_regions():
    segments = [seg(0, 10, "A"), seg(8, 15, "B"), seg(20, 30, "A"), seg(31, 31.5, "B")]
    music = [MusicRegion(start=24, end=26, probability=0.9)]
    rows = annotate_segments(segments, music, min_usable_s=1.0)

    assert rows[0]["overlap"] and not rows[0]["music"]
    assert rows[0]["usable_regions"] == [[0, 8]]
    assert rows[1]["usable_regions"] == [[10, 15]]
    assert rows[2]["music"] and rows[2]["usable_regions"] == [[20, 24], [26, 30]]
    assert not rows[3]["usable"]  # 0.5 s is shorter than the minimum
    assert usable_seconds(rows) == 8 + 5 + 4 + 4


def test_uncertain_spans_are_cut_out_of_usable_regions():
    rows = annotate_segments([seg(0, 10, "A")], [], 1.0, uncertain=[(2, 3), (2.5, 4), (9.5, 12)])
    assert rows[0]["usable_regions"] == [[0, 2], [4, 9.5]] and not rows[0]["overlap"]


def test_same_speaker_overlap_is_not_overlapped_speech():
    rows = annotate_segments([seg(0, 5, "A"), seg(4, 8, "A")], [], 1.0)
    assert not rows[0]["overlap"] and rows[0]["usable_regions"] == [[0, 5]]


def test_subtract_handles_holes_at_edges():
    assert subtract((0, 10), [(0, 2), (9, 12)]) == [(2, 9)]
    assert subtract((0, 10), [(-1, 11)]) == []


def test_rttm_lines():
    text = build_rttm("vid", [seg(1.5, 3.25, "SPEAKER_00")])
    assert text == "SPEAKER vid 1 1.500 1.750 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
