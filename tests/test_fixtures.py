"""The fixtures' long recordings are real speech, and the check that says so can fail.

Why: the "four minutes of real speech" other tests run through the pipeline used to be
77 % noise (issue 23): the concat demuxer read the eval set's float WAVs as int16.
Both the fixed join and the old one are run here on the same files of mixed formats.
"""

from __future__ import annotations

import soundfile as sf

from devstack.media import ffmpeg
from tests.conftest import join_speech, speech_check

MIXED = ["pyannote_sample.wav", "pyannote_debug_dev00.wav", "falcon_test.wav", "pyannote_debug_trn08.wav"]


def test_joined_speech_of_mixed_formats_is_speech(tmp_path, eval_dir):
    files = [eval_dir / "diarization" / "audio" / name for name in MIXED]
    assert {sf.info(str(f)).subtype for f in files} == {"PCM_16", "FLOAT"}, (
        "both formats, or nothing is tested"
    )
    name, duration = join_speech(tmp_path, "joined.wav", files)
    assert abs(duration - sum(sf.info(str(f)).duration for f in files)) < 0.1
    assert speech_check(tmp_path / name, duration) is None


def test_the_check_refuses_what_the_old_fixture_built(tmp_path, eval_dir):
    files = [eval_dir / "diarization" / "audio" / name for name in MIXED]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{f}'\n" for f in files))
    ffmpeg(
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-ac",
        "1",
        "-ar",
        "16000",
        str(tmp_path / "old.wav"),
    )
    expected = sum(sf.info(str(f)).duration for f in files)
    problem = speech_check(tmp_path / "old.wav", expected)
    assert problem is not None and "old.wav" in problem, "the noisy join passed the check"
    # and each of the check's bounds refuses it on its own, not only the duration
    noisy, rate = sf.read(str(tmp_path / "old.wav"), dtype="float32")
    sf.write(str(tmp_path / "cut.wav"), noisy[: round(expected * rate)], rate, subtype="PCM_16")
    level = speech_check(tmp_path / "cut.wav", expected)
    assert level is not None and "RMS" in level, level
