"""Clips and long windows cut from a video's committed outputs (core.training.clips).

The recording is real speech: the annotated evaluation files, at 48 kHz, one after
another with pauses, their reference turns as the diarization, and a 90 s monologue
with a jingle in it (its turn long enough to need splitting). The metadata rows come
from core.store.outputs.annotate_segments, as in a committed metadata.json.
"""

from __future__ import annotations

import copy
import math
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from core.contracts.clips import ClipPolicy
from core.contracts.export import ExportFilters
from core.contracts.metadata import Metadata
from core.training.clips import FrameLevels, cut_clips, long_windows
from tests.podcast import LABELS, build_podcast


@pytest.fixture(scope="module")
def podcast(tmp_path_factory) -> tuple[Path, dict, FrameLevels]:
    path, metadata = build_podcast(tmp_path_factory.mktemp("podcast"))
    return path, metadata, FrameLevels.from_wav(path)


def _regions(metadata: dict) -> list[tuple[int, int, dict]]:
    return sorted(
        (round(s * 1000), round(e * 1000), row)
        for row in metadata["segments"]
        for s, e in row["usable_regions"]
    )


def test_clips_fill_the_usable_regions_within_bounds(podcast):
    _, metadata, levels = podcast
    before = copy.deepcopy(metadata)
    policy = ClipPolicy()
    clips = cut_clips(Metadata.model_validate(metadata), levels, policy)
    regions = _regions(metadata)
    assert all(a[1] <= b[0] for a, b in pairwise(regions)), "fixture regions overlap"
    expected = sum(math.ceil((e - s) / 30_000) for s, e, _ in regions if e - s >= 3_000)
    assert len(clips) == expected and expected >= 6
    assert all(policy.min_s <= round(c.duration, 3) <= policy.max_s for c in clips)
    for clip in clips:
        inside = [r for s, e, r in regions if s / 1000 <= clip.start and clip.end <= e / 1000]
        assert len(inside) == 1 and inside[0]["speaker"] == clip.speaker
        assert clip.labels == {
            k: None if v is None else float(v) for k, v in inside[0].get("labels", {}).items()
        }
    assert [c.start for c in clips] == sorted(c.start for c in clips)
    assert all(a.end <= b.start for a, b in pairwise(clips))
    ids = [c.clip_id for c in clips]
    assert len(set(ids)) == len(ids) and not any("." in i for i in ids)
    assert ids[0] == f"pod1_{round(clips[0].start * 1000):09d}_{round(clips[0].end * 1000):09d}"
    assert metadata == before, "cut_clips rewrote the committed metadata"
    usable = sum(e - s for s, e, _ in regions if e - s >= 3_000) / 1000
    assert sum(c.duration for c in clips) == pytest.approx(usable, abs=1e-6)


def test_a_long_turn_is_split_in_its_pauses(podcast):
    _, metadata, levels = podcast
    host = next(r for r in metadata["segments"] if r["speaker"] == "HOST")
    (s, e), (s2, e2) = host["usable_regions"]  # the jingle cuts the monologue in two
    assert e - s > 60 and 3 < e2 - s2 < 30
    typed = Metadata.model_validate(metadata)
    clips = [c for c in cut_clips(typed, levels, ClipPolicy()) if s <= c.start < e]
    assert len(clips) == 3 and clips[0].start == s and clips[-1].end == e
    even = [s + (e - s) * k / 3 for k in (1, 2)]
    for clip, ideal in zip(clips[1:], even):
        cut = clip.start
        frame = levels.db[int(cut / levels.hop_s)]
        region = levels.db[int(s / levels.hop_s) : int(e / levels.hop_s)]
        assert frame < np.median(region) - 10, f"cut at {cut:.2f} s is not in a pause"
        assert abs(cut - ideal) <= 2 * ClipPolicy().pause_search_s
    plain = [c for c in cut_clips(typed, None, ClipPolicy()) if s <= c.start < e]
    assert [round(c.duration, 3) for c in plain] == pytest.approx([(e - s) / 3] * 3, abs=0.002)


def _one_region(length_s: float, start: float = 10.0, labels: dict | None = None) -> Metadata:
    end = round(start + length_s, 3)
    row = {
        "start": start,
        "end": end,
        "speaker": "A",
        "overlap": False,
        "music": False,
        "usable": True,
        "usable_regions": [[start, end]],
    }
    if labels is not None:
        row["labels"] = labels
    return Metadata.model_validate({"video_id": "v", "segments": [row]})


@pytest.mark.parametrize(
    ("length_s", "pieces"), [(2.999, 0), (3.0, 1), (30.0, 1), (30.001, 2), (33.0, 2), (60.001, 3), (61.7, 3)]
)
def test_piece_arithmetic_at_the_bounds(length_s, pieces):
    clips = cut_clips(_one_region(length_s), None, ClipPolicy())
    assert len(clips) == pieces
    assert all(3.0 <= round(c.duration, 3) <= 30.0 for c in clips)


def test_every_length_splits_into_valid_pieces_wherever_the_pauses_are():
    """Quiet frames placed at random: the search bounds alone must keep pieces valid."""
    rng = np.random.default_rng(3)
    levels = FrameLevels(rng.uniform(-80, -10, 60_000).astype(np.float32), 0.01)
    for policy in (ClipPolicy(), ClipPolicy(min_s=5, max_s=10, pause_search_s=4.0)):
        for length_s in np.arange(policy.min_s, 200.0, 0.713):
            clips = cut_clips(_one_region(round(float(length_s), 3), start=7.3), levels, policy)
            assert len(clips) == math.ceil(round(length_s * 1000) / round(policy.max_s * 1000))
            assert all(policy.min_s <= round(c.duration, 3) <= policy.max_s for c in clips), length_s
            assert all(a.end == b.start for a, b in pairwise(clips))


def test_one_speakers_overlapping_turns_give_no_overlapping_clips():
    rows = [
        {
            "start": 0.0,
            "end": 20.0,
            "speaker": "A",
            "usable_regions": [[0.0, 20.0]],
            "labels": {"snr_db": 1.0},
        },
        {"start": 15.0, "end": 40.0, "speaker": "A", "usable_regions": [[15.0, 40.0]]},
        {"start": 19.0, "end": 21.0, "speaker": "A", "usable_regions": [[19.0, 21.0]]},
    ]
    clips = cut_clips(Metadata.model_validate({"video_id": "v", "segments": rows}), None, ClipPolicy())
    assert [(c.start, c.end) for c in clips] == [(0.0, 20.0), (20.0, 40.0)]
    assert clips[0].labels == {"snr_db": 1.0} and clips[1].labels == {}


def test_labels_are_carried_as_numbers_or_none():
    labels = {"snr_db": 12, "clipping": False, "singing": None, "note": "n/a"}
    (clip,) = cut_clips(_one_region(5.0, labels=labels), None, ClipPolicy())
    assert clip.labels == {"snr_db": 12.0, "clipping": 0.0, "singing": None}


def test_windows_cover_the_speech_in_pauses_and_their_rttm_parses(podcast, tmp_path):
    from pyannote.database.util import load_rttm

    _, metadata, _ = podcast
    policy = ClipPolicy(window_s=120.0)
    windows = long_windows(Metadata.model_validate(metadata), policy)
    assert len(windows) >= 3
    assert all(0 < w.end - w.start <= policy.window_s + 1e-9 for w in windows)
    assert all(a.end <= b.start for a, b in pairwise(windows))
    speech = sum(r["end"] - r["start"] for r in metadata["segments"])
    assert sum(t.end - t.start for w in windows for t in w.turns) == pytest.approx(speech, abs=0.01)
    for w in windows[:-1]:  # the pauses between files leave room: no turn is cut
        assert not any(r["start"] < w.end < r["end"] for r in metadata["segments"])
    rttm = tmp_path / "windows.rttm"
    rttm.write_text("".join(w.rttm() for w in windows))
    parsed = load_rttm(rttm)
    assert set(parsed) == {w.window_id for w in windows}
    for w in windows:
        annotation = parsed[w.window_id]
        assert len(list(annotation.itertracks())) == len(w.turns)
        assert annotation.get_timeline().extent().end <= w.end - w.start + 1e-6
        assert set(annotation.labels()) == {t.speaker for t in w.turns}
        assert len({t.speaker for t in w.turns}) >= 1


def test_talk_longer_than_a_window_is_cut_at_turn_ends():
    rows = []
    for k in range(40):  # 300 s of two people taking turns, each turn overlapping the next
        start = k * 7.5
        rows.append({"start": start, "end": start + 8.0, "speaker": "AB"[k % 2], "usable_regions": []})
    windows = long_windows(
        Metadata.model_validate({"video_id": "v", "segments": rows}), ClipPolicy(window_s=120.0)
    )
    assert windows[0].start == 0.0 and windows[-1].end == 300.5
    assert all(w.end - w.start <= 120.0 for w in windows)
    ends = {r["end"] for r in rows}
    assert all(w.end in ends for w in windows)
    total = sum(t.end - t.start for w in windows for t in w.turns)
    assert total == pytest.approx(40 * 8.0)
    assert all(t.start >= 0 and t.end <= w.end - w.start + 1e-9 for w in windows for t in w.turns)
    assert long_windows(Metadata.model_validate({"video_id": "v", "segments": []}), ClipPolicy()) == []


def test_frame_levels_read_in_blocks_match_the_whole_file(podcast):
    path, _, levels = podcast
    samples, rate = sf.read(path, dtype="float32")
    hop = round(0.01 * rate)
    assert len(levels.db) == math.ceil(len(samples) / hop)
    head = samples[: hop * 5000].reshape(-1, hop)
    expected = 10 * np.log10(np.maximum(np.mean(head.astype(np.float64) ** 2, axis=1), 1e-30))
    np.testing.assert_allclose(levels.db[:5000], np.maximum(expected, -100), atol=1e-3)
    silent = FrameLevels(np.array([-20, -20, -60, -61, -60, -20, -62, -20], np.float32), 0.01)
    assert silent.quietest(0.0, 0.08) == pytest.approx(0.035)  # the middle of the longest quiet run
    assert silent.quietest(0.06, 0.08) == pytest.approx(0.065)
    assert silent.quietest(5.0, 6.0) == 5.5  # beyond the recording: no frame, the middle


def test_filters_admit_and_reject_on_every_label():
    (clip,) = cut_clips(_one_region(10.0, labels=LABELS), None, ClipPolicy())
    assert ExportFilters().admits(clip)
    cases = {
        "min_dnsmos": ("dnsmos_ovrl", 3.0, 3.5),
        "min_bandwidth_hz": ("bandwidth_hz", 7000.0, 8000.0),
        "min_snr_db": ("snr_db", 20.0, 30.0),
        "max_music": ("music", 0.1, 0.01),
    }
    for flag, (label, admits, rejects) in cases.items():
        assert ExportFilters(**{flag: admits}).admits(clip), flag
        assert not ExportFilters(**{flag: rejects}).admits(clip), flag
        unmeasured = clip.model_copy(update={"labels": {**clip.labels, label: None}})
        assert not ExportFilters(**{flag: admits}).admits(unmeasured), f"{flag}: None admitted"
        missing = clip.model_copy(update={"labels": {}})
        assert not ExportFilters(**{flag: admits}).admits(missing), f"{flag}: missing admitted"
    assert ExportFilters(min_s=10.0, max_s=10.0).admits(clip)
    assert not ExportFilters(min_s=10.5).admits(clip) and not ExportFilters(max_s=9.5).admits(clip)


def test_clips_carry_their_speakers_language_and_the_filter_admits_on_it():
    rows = [
        {"start": s, "end": s + 10.0, "speaker": who, "usable": True, "usable_regions": [[s, s + 10.0]]}
        for s, who in ((0.0, "A"), (20.0, "B"), (40.0, "C"))
    ]
    metadata = Metadata.model_validate(
        {
            "video_id": "v",
            "segments": rows,
            "language": {"language": "en", "probability": 0.7},
            "speakers": {
                "A": {"language": {"language": "de", "probability": 0.95}},
                "B": {"language": {"language": "en", "probability": 0.6}},
                "C": {},  # no clean window heard: the video's language
            },
        }
    )
    a, b, c = cut_clips(metadata, None, ClipPolicy())
    assert [(x.language, x.language_p) for x in (a, b, c)] == [("de", 0.95), ("en", 0.6), ("en", 0.7)]
    english, sure = ExportFilters(language="en"), ExportFilters(language="en", min_language_p=0.65)
    assert [english.admits(x) for x in (a, b, c)] == [False, True, True]
    assert [sure.admits(x) for x in (a, b, c)] == [False, False, True]
    (unheard,) = cut_clips(_one_region(10.0), None, ClipPolicy())
    assert unheard.language is None and not ExportFilters(language="en").admits(unheard)
    assert not ExportFilters(min_language_p=0.1).admits(unheard), "an unknown language is not a sure one"
    assert [w.language for w in long_windows(metadata, ClipPolicy())] == ["en"]


def test_the_export_command_passes_the_language_filters_on():
    from core.service.settings import Settings
    from starter.cli import build_parser
    from starter.export import spec_from_args

    flags = [
        "export",
        "--batch-id",
        "b",
        "--format",
        "webdataset",
        "--language",
        "en",
        "--min-language-p",
        "0.8",
    ]
    spec = spec_from_args(build_parser().parse_args([*flags, "--max-hours-per-speaker", "20"]), Settings())
    assert (spec.filters.language, spec.filters.min_language_p) == ("en", 0.8)
    assert spec.max_hours_per_speaker == 20.0
    assert spec.name.startswith("webdataset/clips-"), "a filtered export has its own folder"
    with pytest.raises(SystemExit) as refused:  # a usage error, not a traceback
        build_parser().parse_args([*flags, "--max-hours-per-speaker", "0"])
    assert refused.value.code == 2


def test_the_language_filters_leave_an_existing_exports_name_alone():
    from core.contracts.export import ExportSpec

    # the name an export with this spec had before the language filters existed
    spec = ExportSpec(batch_id="b", format="webdataset", filters=ExportFilters(min_dnsmos=3.0))
    assert spec.name == "webdataset/clips-5058991793"
    english = spec.model_copy(update={"filters": ExportFilters(min_dnsmos=3.0, language="en")})
    assert english.name.startswith("webdataset/clips-") and english.name != spec.name


def test_policy_refuses_bounds_that_cannot_split():
    with pytest.raises(ValidationError):
        ClipPolicy(min_s=3.0, max_s=5.0)
    with pytest.raises(ValidationError):
        ClipPolicy(window_s=10.0)
    policy = ClipPolicy.model_validate_json('{"min_s": 2, "max_s": 20, "window_s": 60}')
    with pytest.raises(ValidationError):
        policy.min_s = 1.0  # frozen
