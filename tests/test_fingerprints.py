"""Duplicate audio (core/corpus/fingerprints.py): the system ffmpeg's Chromaprint of real
recordings and copies of them made here with ffmpeg, each test one thing the matcher must
get right; the figures over the whole eval set are benchmarks/duplicates.py's."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.contracts.errors import ConfigurationError, EmptyMedia, InvalidMedia, Stalled
from core.contracts.video import Relation
from core.corpus import fingerprints
from core.corpus.fingerprints import (
    ITEM_S,
    MAX_BIT_ERROR,
    Fingerprint,
    Overlap,
    fingerprint,
    match,
    overlaps,
    relation,
)
from devstack.media import ffmpeg, join
from tests.conftest import EVAL

SPEECH = EVAL / "diarization" / "audio"
PANEL = SPEECH / "pyaa_diarizationExample.wav"  # 42 s, four speakers
# the long recording a highlight is cut from: 150 s of five different recordings
LONG_PARTS = [
    "pyaa_diarizationExample",
    "pyannote_debug_dev00",
    "falcon_test",
    "pyannote_debug_trn07",
    "pyannote_sample",
]
PLACE_S = 0.2  # how near a boundary at a file's start or end must be to the cut
INTERIOR_S = 1.0  # the same for one between two other audios (standard deviation ~0.4 s)


def duration_s(path: Path) -> float:
    import soundfile as sf

    return float(sf.info(str(path)).duration)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fingerprints")


@pytest.fixture(scope="module")
def long_recording(work) -> Path:
    path = work / "long.wav"
    join([SPEECH / f"{name}.wav" for name in LONG_PARTS], work / "join", "-c:a", "pcm_s16le", str(path))
    return path


def test_a_reencode_is_the_same_recording_at_offset_zero(work):
    """Opus at 32 kbps: most of the fingerprint's bits survive, and the whole file aligns."""
    copy = work / "panel.opus"
    ffmpeg("-i", str(PANEL), "-c:a", "libopus", "-b:a", "32k", str(copy))
    original, reencoded = fingerprint(PANEL), fingerprint(copy)
    found = match(reencoded, original)
    assert found is not None
    assert abs(found.offset_s) < ITEM_S / 2
    assert found.bit_error < MAX_BIT_ERROR / 3
    assert found.duration_s == pytest.approx(original.duration_s, abs=PLACE_S)
    assert relation(found, duration_s(copy), duration_s(PANEL)) is Relation.SAME


def test_a_copy_trimmed_by_ten_seconds_aligns_ten_seconds_in(work):
    """MP3 at 8 kHz with its first 10 s cut: the new video lies inside the committed one,
    and 10 s of 42 is more than the committed one may lack and still be the same."""
    copy = work / "panel-trimmed.mp3"
    ffmpeg("-ss", "10", "-i", str(PANEL), "-ar", "8000", "-c:a", "libmp3lame", "-b:a", "64k", str(copy))
    found = match(fingerprint(copy), fingerprint(PANEL))
    assert found is not None
    assert found.offset_s == pytest.approx(10.0, abs=ITEM_S)
    assert found.query_start_s == pytest.approx(0.0, abs=PLACE_S)
    assert found.reference_start_s == pytest.approx(10.0, abs=PLACE_S)
    assert found.reference_end_s == pytest.approx(duration_s(PANEL), abs=PLACE_S)
    assert relation(found, duration_s(copy), duration_s(PANEL)) is Relation.CONTAINED


def test_a_sixty_second_cut_is_contained_where_it_was_cut(work, long_recording):
    """60 s from 45 s into a 150 s recording, as MP3: contained there; the other way round
    (the long one new, the cut committed) the new one contains the committed one."""
    cut = work / "highlight.mp3"
    ffmpeg("-ss", "45", "-t", "60", "-i", str(long_recording), "-c:a", "libmp3lame", "-b:a", "64k", str(cut))
    long_fp, cut_fp = fingerprint(long_recording), fingerprint(cut)
    found = match(cut_fp, long_fp)
    assert found is not None
    assert (found.reference_start_s, found.reference_end_s) == pytest.approx((45.0, 105.0), abs=PLACE_S)
    assert (found.query_start_s, found.query_end_s) == pytest.approx((0.0, 60.0), abs=PLACE_S)
    assert relation(found, duration_s(cut), duration_s(long_recording)) is Relation.CONTAINED
    assert relation(match(long_fp, cut_fp), duration_s(long_recording), duration_s(cut)) is Relation.CONTAINS


def test_a_jingle_in_front_and_an_ad_break_leave_two_aligned_stretches(work):
    """6 s of tones before the recording and 6 s more cut into its middle: two stretches,
    each where the recording's audio went; together they cover it."""
    tones = work / "tones.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=6", "-ac", "1", str(tones))
    half = 21.0
    head = work / "panel-head.wav"
    ffmpeg("-t", str(half), "-i", str(PANEL), str(head))
    edited = work / "panel-edited.mp3"
    join([tones, head, tones, (PANEL, half)], work / "join", "-c:a", "libmp3lame", "-b:a", "64k", str(edited))
    found = sorted(overlaps(fingerprint(edited), fingerprint(PANEL)), key=lambda o: o.query_start_s)
    assert len(found) == 2
    first, second = found
    assert (first.query_start_s, first.reference_start_s) == pytest.approx((6.0, 0.0), abs=PLACE_S)
    assert (first.query_end_s, first.reference_end_s) == pytest.approx((6.0 + half, half), abs=INTERIOR_S)
    assert (second.query_start_s, second.reference_start_s) == pytest.approx(
        (6.0 + half + 6.0, half), abs=INTERIOR_S
    )
    assert second.reference_end_s == pytest.approx(duration_s(PANEL), abs=PLACE_S)
    assert first.offset_s == pytest.approx(-6.0, abs=ITEM_S) and second.offset_s == pytest.approx(
        -12.0, abs=ITEM_S
    )
    # 12 s of tones in 54 s is more than the new video may add and still be the same
    assert relation(found, duration_s(edited), duration_s(PANEL)) is Relation.CONTAINS


@pytest.mark.parametrize(
    "a, b",
    [
        ("pyannote_debug_dev00", "pyannote_debug_dev01"),  # one AMI meeting: same room, same two voices
        ("pyannote_debug_trn07", "pyannote_debug_trn08"),
        ("pyaa_diarizationExample", "falcon_test"),
    ],
)
def test_different_recordings_share_nothing(a, b):
    fa, fb = fingerprint(SPEECH / f"{a}.wav"), fingerprint(SPEECH / f"{b}.wav")
    assert overlaps(fa, fb) == [] and overlaps(fb, fa) == []
    assert relation(match(fa, fb), 30.0, 30.0) is None


def test_the_stored_form_round_trips_and_refuses_what_it_is_not():
    original = fingerprint(PANEL)
    data = original.to_bytes()
    assert len(data) < 4 * len(original.items)  # smaller than the raw items
    back = Fingerprint.from_bytes(data)
    assert back.item_s == original.item_s and back.algorithm == original.algorithm
    assert back.items.dtype == np.uint32 and np.array_equal(back.items, original.items)
    with pytest.raises(ValueError, match="version"):
        Fingerprint.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="version"):
        Fingerprint.from_bytes(data[:4] + bytes([fingerprints.FORMAT_VERSION + 1]) + data[5:])
    with pytest.raises(ValueError):
        Fingerprint.from_bytes(data[:-10])
    with pytest.raises(ValueError):
        Fingerprint.from_bytes(data[:6])


def test_unreadable_input_raises_the_typed_errors(tmp_path):
    with pytest.raises(InvalidMedia):
        fingerprint(tmp_path / "missing.mp3")
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(InvalidMedia):
        fingerprint(corrupt)
    short = tmp_path / "short.wav"
    ffmpeg("-t", "1", "-i", str(PANEL), str(short))  # less audio than one item describes
    with pytest.raises(EmptyMedia):
        fingerprint(short)


def fake_ffmpeg(path: Path, script: str) -> str:
    path.write_text("#!/bin/sh\n" + script + "\n")
    os.chmod(path, 0o755)
    return str(path)


def test_an_ffmpeg_without_the_muxer_or_one_that_hangs_is_told_apart(tmp_path):
    """An ffmpeg built without chromaprint is the worker's fault, not the video's; one that
    stops answering is killed at its bound instead of holding the slot."""
    missing = fake_ffmpeg(
        tmp_path / "ffmpeg-plain",
        "echo \"Requested output format 'chromaprint' is not a suitable output format\" >&2; exit 1",
    )
    with pytest.raises(ConfigurationError):
        fingerprint(PANEL, ffmpeg=missing)
    with pytest.raises(ConfigurationError):
        fingerprint(PANEL, ffmpeg=str(tmp_path / "no-such-ffmpeg"))
    hung = fake_ffmpeg(tmp_path / "ffmpeg-hung", "exec sleep 30")
    with pytest.raises(Stalled):
        fingerprint(PANEL, ffmpeg=hung, timeout_s=0.5)


def stretch(q: tuple[float, float], r: tuple[float, float]) -> Overlap:
    return Overlap(q[0], q[1], r[0], r[1], bit_error=0.05)


@pytest.mark.parametrize(
    "found, new_s, committed_s, expected",
    [
        # a 50 min re-upload with a 2 min different intro: within a tenth
        (stretch((120, 3120), (0, 3000)), 3120, 3000, Relation.SAME),
        # a 60 s highlight of it
        (stretch((0, 60), (600, 660)), 60, 3000, Relation.CONTAINED),
        # a compilation holding the whole committed video
        (stretch((900, 3900), (0, 3000)), 6000, 3000, Relation.CONTAINS),
        # two episodes sharing a 30 s intro
        (stretch((0, 30), (0, 30)), 3000, 2800, Relation.PARTIAL),
        # a 30 s clip after a shared 20 s intro, against another: 10 s of its own is not a copy
        (stretch((0, 20), (0, 20)), 30, 32, Relation.PARTIAL),
        # an ad break cut into a re-upload: two stretches cover the committed video
        ([stretch((0, 1500), (0, 1500)), stretch((1560, 3060), (1500, 3000))], 3060, 3000, Relation.SAME),
        (None, 60, 60, None),
        ([], 60, 60, None),
    ],
)
def test_relation_from_the_shared_stretches(found, new_s, committed_s, expected):
    assert relation(found, new_s, committed_s) is expected
