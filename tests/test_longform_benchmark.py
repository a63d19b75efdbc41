"""The long-form benchmark builds an exact reference and the quality tool scores it.

Why: the long-form figures (DER, speaker count on recordings of many minutes) are only
worth anything if the built recording and its reference agree to the sample: a turn
shifted by the wrong offset, an AMI participant split into two labels, or an interlude
left out of the scored region would move the figures with no one noticing. Built from
three eval files (two AMI excerpts that share their speakers, one file with local
labels and no UEM) and three music clips (only one of them instrumental), so every
rule of the builder is exercised in a few seconds.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks import quality
from benchmarks.eval_set import RATE
from benchmarks.longform import (
    AMI_SPEAKER,
    EVAL,
    MUSIC_S,
    PODCAST_MUSIC_EVERY,
    PODCASTS,
    SILENCE_S,
    build_longform,
    build_podcast,
    instrumental_clips,
    load_interludes,
    load_sources,
)
from benchmarks.quality import Counts
from core.contracts.rttm import read_rttm, read_uem
from core.contracts.video import Segment

SPEECH = ["falcon_test", "pyannote_debug_dev00", "pyannote_debug_dev01"]
MUSIC = ["librosa_brahms", "librosa_libri1", "synthradio_example-1"]  # instrumental, speech, mixed
TOLERANCE_S = 0.005


def _copy(src: Path, dst: Path, names: list[str], extras: dict[str, str]) -> Path:
    """Copy ``names`` (audio plus any of ``extras``: subfolder -> extension) in the eval layout."""
    assert src.is_dir(), f"evaluation audio missing: {src}"
    for sub in ("audio", *extras):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        (audio,) = (src / "audio").glob(f"{name}.*")
        shutil.copy(audio, dst / "audio" / audio.name)
        for sub, ext in extras.items():
            if (src / sub / f"{name}.{ext}").is_file():
                shutil.copy(src / sub / f"{name}.{ext}", dst / sub / f"{name}.{ext}")
    return dst


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    diar = _copy(EVAL / "diarization", root / "diarization", SPEECH, {"rttm": "rttm", "uem": "uem"})
    music = _copy(EVAL / "music", root / "music", MUSIC, {"labels": "csv"})
    return diar, music


@pytest.fixture(scope="module")
def built(subset, tmp_path_factory):
    diar, music = subset
    out = tmp_path_factory.mktemp("longform")
    return out, {r.uri: r for r in build_longform(out, diar, music, seed=0)}


def test_only_instrumental_clips_become_interludes(subset) -> None:
    _, music = subset
    assert [p.stem for p in instrumental_clips(music)] == ["librosa_brahms"]


def test_audio_is_the_pieces_back_to_back(built) -> None:
    out, recordings = built
    assert sorted(recordings) == ["longform-x1", "longform-x3"]
    for uri, rec in recordings.items():
        data, rate = sf.read(str(out / "audio" / f"{uri}.wav"))
        assert rate == RATE and data.ndim == 1 and len(data) == len(rec.samples)
        assert rec.pieces[0].start == 0.0
        assert all(abs(a.end - b.start) < 1e-9 for a, b in zip(rec.pieces, rec.pieces[1:]))
        assert abs(sum(p.end - p.start for p in rec.pieces) - len(data) / RATE) < TOLERANCE_S


def test_layouts_repeat_the_set_with_interludes_between(built) -> None:
    _, recordings = built
    for uri, repeats in (("longform-x1", 1), ("longform-x3", 3)):
        pieces = recordings[uri].pieces
        speech = [p.name for p in pieces if p.kind == "speech"]
        assert sorted(speech) == sorted(SPEECH * repeats)
        layouts = [speech[k : k + len(SPEECH)] for k in range(0, len(speech), len(SPEECH))]
        assert all(a != b for a, b in zip(layouts, layouts[1:])), layouts  # each repeat reshuffled
        kinds = [p.kind for p in pieces]
        assert kinds == ["speech"] + ["silence", "music", "silence", "speech"] * (len(speech) - 1)
        for p in pieces:
            low, high = {"music": MUSIC_S, "silence": SILENCE_S}.get(p.kind, (0, np.inf))
            assert low - TOLERANCE_S <= p.end - p.start <= high + TOLERANCE_S, p


def test_reference_turns_lie_in_their_speech_piece(built) -> None:
    out, recordings = built
    for uri, rec in recordings.items():
        turns = read_rttm(out / "rttm" / f"{uri}.rttm")
        assert len(turns) == len(rec.reference) > 0
        speech = [p for p in rec.pieces if p.kind == "speech"]
        for t in turns:
            assert 0 <= t.start < t.end <= rec.duration + TOLERANCE_S, t
            assert any(p.start - TOLERANCE_S <= t.start and t.end <= p.end + TOLERANCE_S for p in speech), t
        first = min(turns, key=lambda t: t.start)  # the first turn of the first piece, shifted by 0
        source = read_rttm(EVAL / "diarization" / "rttm" / f"{speech[0].name}.rttm")
        assert abs(first.start - min(s.start for s in source)) < TOLERANCE_S


def test_ami_speakers_are_global_other_labels_local(built) -> None:
    out, recordings = built
    expected = {"MEE009", "MEE012"} | {f"falcon_test:speaker{k}" for k in (1, 2, 3)}
    for uri in recordings:
        labels = {t.speaker for t in read_rttm(out / "rttm" / f"{uri}.rttm")}
        assert labels == expected, labels  # x3: the same three falcon labels in every repeat
        assert all(AMI_SPEAKER.match(s) or s.startswith("falcon_test:") for s in labels)
    pieces = recordings["longform-x1"].pieces
    for name in ("pyannote_debug_dev00", "pyannote_debug_dev01"):  # MEE009 talks in both excerpts
        (piece,) = [p for p in pieces if p.name == name]
        turns = recordings["longform-x1"].reference
        assert any(t.speaker == "MEE009" and piece.start <= t.start < piece.end for t in turns)


def test_uem_covers_every_piece(built) -> None:
    out, recordings = built
    for uri, rec in recordings.items():
        n = int(round(rec.duration / quality.HOP_S))
        scored = quality.frame_mask(read_uem(out / "uem" / f"{uri}.uem"), n)
        for p in rec.pieces:
            a, b = int(round(p.start / quality.HOP_S)) + 1, int(round(p.end / quality.HOP_S)) - 1
            if p.kind == "speech" and p.name != "falcon_test":  # AMI: UEM 0-30 s of a 30.0001 s file
                b = int(round((p.start + 30.0) / quality.HOP_S)) - 1
            assert scored[a:b].all(), (uri, p)
        assert abs(scored.sum() * quality.HOP_S - sum(e - s for s, e in rec.scored)) < 0.1


def test_same_seed_same_recording_other_seed_other_layout(subset, tmp_path) -> None:
    diar, music = subset
    first = build_longform(tmp_path / "a", diar, music, seed=0, limit=2)
    again = build_longform(tmp_path / "b", diar, music, seed=0, limit=2)
    other = build_longform(tmp_path / "c", diar, music, seed=1, limit=2)
    assert [r.uri for r in first] == ["longform-x1-first2"]  # a short run: one layout
    assert np.array_equal(first[0].samples, again[0].samples)
    assert len(first[0].samples) != len(other[0].samples)


def test_a_podcast_brings_its_voices_back_cut_and_levelled_anew_each_round(subset, tmp_path) -> None:
    """podcast-2v (dev00 and dev01: MEE009 and MEE012 for half an hour): each round holds
    both parts of both files, cut at a new point each round, and the reference keeps
    every second of the sources' turns."""
    diar, music = subset
    sources = load_sources(diar, None, tmp_path)
    podcast = next(p for p in PODCASTS if p.uri == "podcast-2v")
    rec = build_podcast(podcast, sources, load_interludes(music, tmp_path), seed=0)
    assert rec.duration >= podcast.minutes * 60 and rec.speakers == {"MEE009", "MEE012"}
    speech = [p for p in rec.pieces if p.kind == "speech"]
    rounds = [speech[k : k + 4] for k in range(0, len(speech), 4)]
    assert len(speech) % 4 == 0 and len(rounds) >= 2
    cuts = []
    for pieces in rounds:
        names = sorted(p.name for p in pieces)
        assert [n.split("[")[0] for n in names] == ["pyannote_debug_dev00"] * 2 + ["pyannote_debug_dev01"] * 2
        cuts.append(tuple(n.split("[")[1] for n in names))
    assert len(set(cuts)) == len(cuts), "every round cuts the files at a new point"
    by_name = {s.uri: s for s in sources}
    source_speech = sum(t.end - t.start for uri in podcast.sources for t in by_name[uri].turns)
    assert abs(sum(t.end - t.start for t in rec.reference) - len(rounds) * source_speech) < TOLERANCE_S
    n_music = sum(p.kind == "music" for p in rec.pieces)
    assert n_music == (len(speech) - 1) // PODCAST_MUSIC_EVERY


def test_overlap_and_speaker_count_figures() -> None:
    """Overlap frames are counted where 2+ speakers talk, and only inside the scored region."""
    ref = [Segment(start=0, end=2, speaker="a"), Segment(start=1, end=3, speaker="b")]  # overlap 1-2 s
    hyp = [Segment(start=0, end=1.5, speaker="x"), Segment(start=1.2, end=4, speaker="y")]  # 1.2-1.5 s
    in_scope = np.ones(400, dtype=bool)
    assert quality.overlap_counts(ref, hyp, in_scope) == Counts(tp=30, fp=0, fn=70)
    in_scope[:150] = False
    assert quality.overlap_counts(ref, hyp, in_scope) == Counts(tp=0, fp=0, fn=50)
    result = quality.DiarizationFile("f", 1, None, None, None, None, 3, 4, Counts(), Counts(), [], [], [], [])
    assert quality.speaker_count_error(result) == -25.0


def test_quality_tool_scores_the_longform_recording(subset, tmp_path, capsys) -> None:
    diar, music = subset
    args = ["--longform", "--longform-limit", "2", "--diarization", str(diar), "--music", str(music)]
    assert quality.main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = r"^\s+built (\S+): [\d.]+ s .* (\d+) reference speakers, [\d.]+ s reference speech"
    built = re.findall(summary, out, re.M)
    assert [uri for uri, _ in built] == ["longform-x1-first2"] and built[0][1] == "5", out
    assert (tmp_path / "longform-data" / "audio" / "longform-x1-first2.wav").is_file()
    assert read_rttm(tmp_path / "longform-x1-first2.rttm"), out  # the hypothesis, written
    number = r"(\d+(?:\.\d+)?|n/a)"
    assert re.search(r"^TOTAL DER \d+(\.\d+)? % .*right in \d+/1 files", out, re.M), out
    assert re.search(rf"^POOLED overlap precision {number} recall {number} ", out, re.M), out
    for uri, n_ref in built:
        der_row, usable_row = [ln.split() for ln in out.splitlines() if ln.split()[:1] == [uri]]
        assert re.fullmatch(number, der_row[6]), der_row  # DER* (the reference's who-is-who)
        assert re.fullmatch(rf"\d+/{n_ref}", der_row[7]), der_row  # estimated/reference speakers
        assert re.fullmatch(r"[+-]\d+\.\d", der_row[8]), der_row  # their relative error, %
        assert len(usable_row) == 10 and all(re.fullmatch(number, v) for v in usable_row[1:]), usable_row
        line = rf"^SPEAKERS {uri}: estimated \d+, reference {n_ref}, error [+-]\d+\.\d %"
        assert re.search(rf"{line} \(goal within ±25 %: (yes|no)\)", out, re.M), out


def test_default_backend_finds_the_recurring_speakers_of_the_longform_build(built) -> None:
    """The regression this benchmark exists for: a recording of minutes with recurring
    speakers once collapsed to one speaker. The default backend must count them within
    the issue's ±25 % and keep DER under a ceiling (measured 0.25 on x1 and 0.30 on x3,
    whole extent scored; ceiling = measured + 0.10)."""
    from benchmarks.quality import der
    from core.analysis.diarization.pretrained import PretrainedDiarization

    out, recordings = built
    backend = PretrainedDiarization()
    for uri in recordings:
        samples, rate = sf.read(str(out / "audio" / f"{uri}.wav"), dtype="float32")
        found = backend.diarize(samples, rate).segments
        reference = read_rttm(out / "rttm" / f"{uri}.rttm")
        n_ref, n_est = len({t.speaker for t in reference}), len({s.speaker for s in found})
        assert abs(n_est - n_ref) <= 0.25 * n_ref, (uri, n_est, n_ref)
        assert der(reference, found) < {"longform-x1": 0.35, "longform-x3": 0.40}[uri], uri
