"""A corpus of damaged media, built here from real recordings, through the real download
path (yt-dlp over local HTTP, then ffmpeg): each case ends typed (or decodes what can be
decoded) within a bound, and never holds its slot (issue 22).

The first case is the one that wedged a slot: an MP3 with garbage every few KB makes
ffmpeg write ~150 KB of error lines, which filled its stderr pipe while the transcode
read stdout to the end, so neither side moved again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import soundfile as sf

from core.analysis.audio import DecodeBounds, transcode
from core.contracts.errors import PipelineError, Stalled
from core.sources.download import SourceLimits, fetch_audio
from devstack.damaged_media import CASES, build_corpus

SOURCE = "ep03-three-voices.ogg"  # 18.6 s of three real voices
BOUND_S = 60.0  # generous for 2 busy cores; the decodes themselves take about a second


@pytest.fixture(scope="module")
def damaged(media_dir) -> dict[str, Path]:
    return build_corpus(media_dir, media_dir / SOURCE)


@pytest.mark.parametrize("label, name, build, errors", CASES, ids=[c[0] for c in CASES])
def test_damaged_media_ends_typed_and_fast(media_server, damaged, tmp_path, label, name, build, errors):
    started = time.monotonic()
    try:
        got = fetch_audio(
            f"{media_server.url}/{name}",
            tmp_path / "dl",
            limits=SourceLimits(max_duration_s=3600),
            silence_dbfs=-60,
        )
        outcome = f"decoded {got.duration_s:.1f} s"
        assert errors is None, f"{label}: expected one of {errors}, got audio"
        assert 0 < got.duration_s <= 601 and sf.info(str(got.original)).samplerate == 48_000
    except PipelineError as exc:
        outcome = type(exc).__name__
        if errors is not None:
            assert type(exc).__name__ in errors, f"{label}: {exc!r}"
    took = time.monotonic() - started
    print(f"\ndamaged media, {label}: {outcome} in {took:.1f} s")
    assert took < BOUND_S, f"{label}: {outcome} after {took:.1f} s"


def test_the_damaged_mp3_that_wedged_a_slot_decodes_promptly(damaged, tmp_path):
    """Straight through ffmpeg: the transcode returns (before: still blocked after 120 s)."""
    started = time.monotonic()
    out = transcode(damaged["garbage.mp3"], tmp_path / "out.wav", 16_000)
    assert sf.info(str(out)).duration > 500
    assert time.monotonic() - started < BOUND_S


def _hung_input(tmp_path: Path) -> tuple[Path, int]:
    """A FIFO with a writer that never writes: ffmpeg reading it stands for a hung decode
    (a dead disk, a decoder loop): it runs on and its position never moves."""
    import os

    fifo = tmp_path / "never.wav"
    os.mkfifo(fifo)
    return fifo, os.open(fifo, os.O_RDWR | os.O_NONBLOCK)


def test_a_decode_that_stops_moving_is_killed_and_typed(tmp_path):
    import os

    fifo, holder = _hung_input(tmp_path)
    started = time.monotonic()
    try:
        with pytest.raises(Stalled, match="nothing new for 2 s"):
            transcode(fifo, tmp_path / "out.wav", 16_000, bounds=DecodeBounds(no_progress_s=2))
    finally:
        os.close(holder)
    assert time.monotonic() - started < 15


def test_a_decode_past_its_deadline_is_killed_and_typed(tmp_path):
    """The deadline scales with the media: 60 s of it, at 0.05 s per second, plus 1 s."""
    import os

    fifo, holder = _hung_input(tmp_path)
    started = time.monotonic()
    try:
        with pytest.raises(Stalled, match="its 4 s deadline"):
            transcode(
                fifo,
                tmp_path / "out.wav",
                48_000,
                media_s=60,
                bounds=DecodeBounds(fixed_s=1, per_audio_s=0.05, no_progress_s=600),
            )
    finally:
        os.close(holder)
    assert 4 <= time.monotonic() - started < 15
