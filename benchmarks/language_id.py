"""Spoken-language identification: how often the language head is right, which close
languages it confuses, and what it adds to a video's CPU time.

    python -m benchmarks.language_id [--eval DIR] [--minutes M]

Speech in ten languages is made here with espeak-ng (two sentences each, read by two
voices), and the English recordings of the eval set (DIR, laid out like
../shared/eval/diarization) are read with their reference turns. Each goes through what
the labels stage runs: ``speech_windows`` picks the windows, ``identify`` answers per
speaker and per video. espeak-ng's voices are robotic, so the figures for them are a
floor: the head was trained on people.

Printed: per language, the clips, the right answers, and the answers at least
``SURE_P`` sure and how many of those were right (what the report and an export filter
rely on); the confusions; the CPU seconds of the model's load, of one window, and per
audio minute of a recording of ``--minutes`` built from the eval set's turns, as the
labels stage pays them (the target: under 0.1 s per audio minute).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.eval_set import RATE, AnnotatedFile, annotated_diarization
from core.analysis import language
from core.contracts.metadata import SpokenLanguage
from core.contracts.video import Segment
from core.service.settings import Settings

SENTENCES = {
    "en": [
        "The weather was cold this morning, so we stayed inside and talked about the new project "
        "for a long time.",
        "Tomorrow I will take the train to the city and meet my brother for lunch near the old market.",
    ],
    "de": [
        "Heute Morgen war es sehr kalt, deshalb sind wir zu Hause geblieben und haben lange über das neue "
        "Projekt gesprochen.",
        "Morgen fahre ich mit dem Zug in die Stadt und treffe meinen Bruder zum Mittagessen "
        "beim alten Markt.",
    ],
    "nl": [
        "Vanochtend was het erg koud, dus bleven we binnen en praatten we lang over het nieuwe project.",
        "Morgen neem ik de trein naar de stad en lunch ik met mijn broer bij de oude markt.",
    ],
    "es": [
        "Esta mañana hacía mucho frío, así que nos quedamos en casa y hablamos mucho tiempo "
        "del nuevo proyecto.",
        "Mañana tomaré el tren a la ciudad y comeré con mi hermano cerca del mercado viejo.",
    ],
    "pt": [
        "Esta manhã estava muito frio, então ficamos em casa e conversamos muito tempo sobre o novo projeto.",
        "Amanhã vou apanhar o comboio para a cidade e almoçar com o meu irmão perto do mercado antigo.",
    ],
    "it": [
        "Stamattina faceva molto freddo, quindi siamo rimasti a casa e abbiamo parlato a lungo "
        "del nuovo progetto.",
        "Domani prenderò il treno per andare in città e pranzerò con mio fratello vicino al vecchio mercato.",
    ],
    "fr": [
        "Ce matin il faisait très froid, alors nous sommes restés à la maison et avons longtemps "
        "parlé du projet.",
        "Demain je prendrai le train pour aller en ville et je déjeunerai avec mon frère "
        "près du vieux marché.",
    ],
    "pl": [
        "Dziś rano było bardzo zimno, więc zostaliśmy w domu i długo rozmawialiśmy o nowym projekcie.",
        "Jutro pojadę pociągiem do miasta i zjem obiad z bratem niedaleko starego rynku.",
    ],
    "ru": [
        "Сегодня утром было очень холодно, поэтому мы остались дома и долго говорили о новом проекте.",
        "Завтра я поеду на поезде в город и пообедаю с братом возле старого рынка.",
    ],
    "sv": [
        "I morse var det mycket kallt, så vi stannade inne och pratade länge om det nya projektet.",
        "I morgon tar jag tåget till staden och äter lunch med min bror nära det gamla torget.",
    ],
}
VOICES = ("", "+f2")  # espeak-ng's default voice of the language, and a female variant
SPEED = 150  # words per minute: a calm reading pace


def espeak(text: str, voice: str, out: Path) -> tuple[np.ndarray, int]:
    """Speech of ``text`` from espeak-ng, at 16 kHz mono."""
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(SPEED), "-w", str(out), text], check=True, capture_output=True
    )
    import soundfile as sf
    import soxr

    samples, rate = sf.read(str(out), dtype="float32", always_2d=True)
    return soxr.resample(samples.mean(axis=1), rate, RATE).astype(np.float32), RATE


def made_speech(model: language.LanguageId, tmp: Path) -> list[tuple[str, SpokenLanguage]]:
    """(true language, answer) for every espeak-ng clip, read as one speaker's turn."""
    answers = []
    for code, sentences in SENTENCES.items():
        for i, text in enumerate(sentences):
            for variant in VOICES:
                samples, rate = espeak(text, code + variant, tmp / f"{code}-{i}{variant}.wav")
                turn = [Segment(start=0.0, end=len(samples) / rate, speaker="reader")]
                heard = model.identify(samples, rate, language.speech_windows(turn, [], budget=1))
                if heard.video is None:
                    raise SystemExit(f"no window found in the espeak-ng clip {code}-{i}{variant}")
                answers.append((code, heard.video))
    return answers


def eval_speech(model: language.LanguageId, items: list[AnnotatedFile]) -> list[tuple[str, SpokenLanguage]]:
    """(en, answer) for every speaker heard in the eval set's English recordings."""
    answers = []
    for item in items:
        budget = language.window_budget(len(item.samples) / RATE)
        windows = language.speech_windows(item.reference, [], budget)
        heard = model.identify(item.samples, RATE, windows)
        answers += [("en", answer) for answer in heard.speakers.values()]
    return answers


def cost_per_minute(
    model: language.LanguageId, items: list[AnnotatedFile], minutes: float
) -> tuple[float, int, float]:
    """CPU seconds per audio minute of one recording of ``minutes`` made of the eval
    set's files end to end (their turns shifted, each file's speakers kept apart), the
    windows it took, and CPU seconds per window."""
    pieces, turns, offset = [], [], 0.0
    while offset < minutes * 60:
        for item in items:
            pieces.append(item.samples)
            turns += [
                Segment(start=s.start + offset, end=s.end + offset, speaker=f"{item.uri}:{s.speaker}")
                for s in item.reference
            ]
            offset += len(item.samples) / RATE
    recording = np.concatenate(pieces)
    windows = language.speech_windows(turns, [], language.window_budget(offset))
    cpu = time.process_time()
    model.identify(recording, RATE, windows)
    spent = time.process_time() - cpu
    return spent / (offset / 60), len(windows), spent / max(1, len(windows))


def report(answers: list[tuple[str, SpokenLanguage]]) -> None:
    print(f"{'language':<9} {'clips':>5} {'right':>5} {'sure':>5} {'sure+right':>10}")
    for code in dict.fromkeys(truth for truth, _ in answers):
        mine = [a for truth, a in answers if truth == code]
        sure = [a for a in mine if a.probability >= language.SURE_P]
        right = sum(a.language == code for a in mine)
        sure_right = sum(a.language == code for a in sure)
        print(f"{code:<9} {len(mine):>5} {right:>5} {len(sure):>5} {sure_right:>10}")
    right = sum(a.language == truth for truth, a in answers)
    sure = [(truth, a) for truth, a in answers if a.probability >= language.SURE_P]
    sure_right = sum(a.language == truth for truth, a in sure)
    print(
        f"all: {right}/{len(answers)} right ({100 * right / len(answers):.0f} %); "
        f"sure (p >= {language.SURE_P}): {len(sure)}, of which right {sure_right} "
        f"({100 * sure_right / max(1, len(sure)):.0f} %)"
    )
    wrong = Counter((truth, a.language) for truth, a in answers if a.language != truth)
    print(
        "confusions (true -> heard: count): "
        + (", ".join(f"{t}->{h}: {n}" for (t, h), n in wrong.most_common()) or "none")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=Path, default=Path("../shared/eval/diarization"))
    parser.add_argument(
        "--minutes", type=float, default=60.0, help="length of the recording the cost is measured on"
    )
    args = parser.parse_args(argv)
    settings = Settings()

    cpu = time.process_time()
    model = language.load(settings.language_model)
    print(f"model {settings.language_model}: loaded in {time.process_time() - cpu:.2f} CPU s")
    with tempfile.TemporaryDirectory() as tmp:
        made = made_speech(model, Path(tmp))
        items = list(annotated_diarization(args.eval, None, Path(tmp)))
    print(f"\nespeak-ng speech, {len(SENTENCES)} languages x {len(VOICES)} voices x 2 sentences:")
    report(made)
    print(f"\nthe eval set's English speakers ({args.eval}):")
    report(eval_speech(model, items))
    per_minute, windows, per_window = cost_per_minute(model, items, args.minutes)
    print(
        f"\ncost: {per_minute:.3f} CPU s per audio minute on a {args.minutes:g}-minute recording "
        f"({windows} windows, {per_window:.3f} CPU s each; target < 0.1)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
