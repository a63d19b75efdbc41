"""The spoken language of a video and of its speakers (core.analysis.language), on the
real Whisper base model from its wheels: English from the eval set's AMI meetings, and
German and Spanish that espeak-ng reads here, as two speakers of one show.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from core.analysis import language
from core.analysis.language import speech_windows, window_budget
from core.contracts.rttm import read_rttm
from core.contracts.video import MusicRegion, Segment
from core.service.settings import Settings

RATE = language.RATE


@pytest.fixture(scope="module")
def model() -> language.LanguageId:
    return language.load(Settings().language_model)


def _inside(span: tuple[float, float], spans: list[tuple[float, float]]) -> bool:
    return any(s <= span[0] and span[1] <= e for s, e in spans)


def _meets(span: tuple[float, float], spans: list[tuple[float, float]]) -> bool:
    return any(s < span[1] and span[0] < e for s, e in spans)


def test_windows_hear_one_voice_away_from_music_the_talkers_first():
    turns = [
        Segment(start=0.0, end=20.0, speaker="A"),
        Segment(start=15.0, end=30.0, speaker="B"),  # over A's 15-20
        Segment(start=40.0, end=100.0, speaker="A"),
        Segment(start=101.0, end=101.5, speaker="B"),  # too short to join a window
    ]
    music = [MusicRegion(start=50.0, end=60.0, probability=0.9)]
    windows = speech_windows(turns, music, budget=10)
    # A: 60.25-99.75 gives two windows, 0.25-15 a third; B: 20-29.75, padded to 10 s when heard
    assert [w.speaker for w in windows] == ["A", "B", "A", "A"], "A talks most: its first window leads"
    for w in windows:
        assert language.MIN_WINDOW_S <= w.seconds <= language.WINDOW_S + 1e-6
        for span in w.spans:
            assert _inside(span, [(t.start, t.end) for t in turns if t.speaker == w.speaker])
            assert not _meets(span, [(15.0, 20.0), (50.0, 60.0)]), f"{w} hears two voices or music"
    assert [w.speaker for w in speech_windows(turns, music, budget=2)] == ["A", "B"]
    assert window_budget(3600) == 15 and window_budget(30) == language.MIN_WINDOWS


def test_short_turns_are_joined_into_one_window():
    turns = [Segment(start=10.0 * i, end=10.0 * i + 2.5, speaker="A") for i in range(6)]
    (window,) = speech_windows(turns, [], budget=3)
    assert len(window.spans) == 5 and window.seconds == pytest.approx(language.WINDOW_S)
    (window,) = speech_windows(turns[:1], [], budget=3) or [None]
    assert window is None, "2 s of speech is too little for a window"


def test_the_eval_sets_meeting_speakers_are_heard_as_english(model, eval_dir):
    diarization = eval_dir / "diarization"
    samples, rate = sf.read(str(diarization / "audio" / "pyannote_debug_dev00.wav"), dtype="float32")
    turns = read_rttm(diarization / "rttm" / "pyannote_debug_dev00.rttm")
    windows = speech_windows(turns, [], window_budget(len(samples) / rate))
    heard = model.identify(samples, rate, windows)
    assert heard.windows == len(windows) >= 2
    assert heard.video is not None and heard.video.language == "en" and heard.video.probability >= 0.5
    assert heard.speakers and all(s.language == "en" for s in heard.speakers.values()), heard.speakers
    assert set(heard.speakers) <= {t.speaker for t in turns}


def _espeak(text: str, voice: str, path: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    samples, rate = sf.read(str(path), dtype="float32")
    return soxr.resample(samples, rate, RATE).astype(np.float32)


def test_two_speakers_of_two_languages_are_told_apart(model, tmp_path):
    german = _espeak(
        "Heute Morgen war es sehr kalt, deshalb sind wir zu Hause geblieben und haben lange über "
        "das neue Projekt gesprochen. Morgen fahre ich mit dem Zug in die Stadt und treffe meinen "
        "Bruder zum Mittagessen.",
        "de",
        tmp_path / "de.wav",
    )
    spanish = _espeak(
        "Esta mañana hacía mucho frío, así que nos quedamos en casa y hablamos durante mucho "
        "tiempo sobre el nuevo proyecto. Mañana tomaré el tren a la ciudad y comeré con mi hermano.",
        "es",
        tmp_path / "es.wav",
    )
    pause = np.zeros(RATE, np.float32)
    show = np.concatenate([german, pause, spanish])
    split = (len(german) + len(pause)) / RATE
    turns = [
        Segment(start=0.0, end=len(german) / RATE, speaker="host"),
        Segment(start=split, end=len(show) / RATE, speaker="guest"),
    ]
    heard = model.identify(show, RATE, speech_windows(turns, [], budget=4))
    assert heard.speakers["host"].language == "de", heard.speakers
    assert heard.speakers["guest"].language == "es", heard.speakers
    assert heard.video is not None and heard.video.language in {"de", "es"}, heard.video
    with pytest.raises(ValueError, match="16000 Hz"):
        model.identify(show, 8000, [])


def test_the_wheels_model_is_joined_once_and_checked(tmp_path):
    first = language.model_dir(language.WHEEL_MODEL_ID, tmp_path)
    model_bin = first / "model.bin"
    assert model_bin.stat().st_size > 100_000_000 and (first / "config.json").is_file()
    stamp = model_bin.stat().st_mtime_ns
    assert language.model_dir(language.WHEEL_MODEL_ID, tmp_path) == first
    assert model_bin.stat().st_mtime_ns == stamp, "joined again"
    assert language.model_dir(str(first), tmp_path / "elsewhere") == first, "a folder is taken as it is"
    assert not list(first.glob("*.part")), "a partial join left behind"
