"""Long-form diarization recordings built from the annotated eval files.

    python -m benchmarks.longform --out DIR [--diarization DIR] [--music DIR] [--seed N] [--limit N]
    python -m benchmarks.longform --out DIR --podcasts [--diarization DIR] [--music DIR] [--seed N]

Why: every annotated eval file is 18-42 s long, but the pipeline's input is hour-long
podcasts, where a backend can fail in ways a 30 s file never shows (one speaker for the
whole episode, hosts split into many clusters). There is no annotated long recording
here, so one is assembled from the annotated short ones, keeping an exact reference:

- ``longform-x1``: every diarization file once, in a seeded random order;
- ``longform-x3``: the whole set three times, each in another seeded order, so the
  same voices come back after minutes, as hosts do.

``--podcasts`` builds the podcast-like set instead (PODCASTS): 2, 3, 4 and 6 voices
taking turns for 30-60 minutes, the pieces at a seeded level each, with a silence between
two pieces and a music interlude every PODCAST_MUSIC_EVERY: who-is-who over an hour, the
way an episode's hosts and guests come back.

Between two speech pieces goes an interlude: a short silence, a 5-15 s excerpt of an
instrumental clip (a music clip whose labels are all ``music``: clips with speech
would bring unannotated speakers), another short silence. Interludes are scored: any
speech found there is a false alarm.

Speaker labels: AMI participant ids (``MEE009``) name one person across meetings, so
they stay as they are (dev00 and dev01 share MEE009 and MEE012); every other file's
labels only mean something inside that file and become ``<uri>:<label>``. A file
repeated in ``longform-x3`` is the same recording, so its labels stay the same.

The output folder is laid out like the eval folder (``audio/<uri>.wav`` 16 kHz mono
PCM, ``rttm/<uri>.rttm``, ``uem/<uri>.uem``), so ``benchmarks.quality`` scores it with
the very code that scores the short files.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.eval_set import RATE, annotated_diarization, decode, find_audio, read_labels
from core.contracts.rttm import Interval, rttm_text, uem_text
from core.contracts.video import Segment

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL = REPO_ROOT.parent / "shared" / "eval"
AMI_SPEAKER = re.compile(r"^[MF]E[EO]\d{3}$")
VERSIONS = (("longform-x1", 1), ("longform-x3", 3))


@dataclass(frozen=True)
class Podcast:
    """A podcast-like recording: a few voices coming back for half an hour or more."""

    uri: str
    sources: tuple[str, ...]  # eval files whose voices take turns, in a new order each round
    minutes: float


# Voices by file: dev00+dev01 MEE009, MEE012 (AMI); falcon_test 3 speakers; pyannote_sample
# speaker90, speaker91; pyaa_diarizationExample speakers A-D.
PODCASTS = (
    Podcast("podcast-2v", ("pyannote_debug_dev00", "pyannote_debug_dev01"), 30),
    Podcast("podcast-3v", ("falcon_test",), 30),
    Podcast("podcast-4v", ("pyannote_sample", "pyannote_debug_dev00", "pyannote_debug_dev01"), 30),
    Podcast("podcast-6v", ("pyannote_sample", "pyaa_diarizationExample"), 60),
)
PODCAST_MUSIC_EVERY = 10  # speech pieces between two music interludes (a jingle, not a DJ set)
PODCAST_GAIN_DB = (-6.0, 3.0)  # each piece's level
PODCAST_SNR_DB = (20.0, 40.0)  # white noise under each piece
PODCAST_CUT = (0.25, 0.75)  # where each round cuts a file in two (a fraction of its length)
MUSIC_S = (5.0, 15.0)  # length of one music excerpt
SILENCE_S = (0.5, 2.0)  # gap on either side of an excerpt, so turns never abut
FADE_S = 0.02  # fade in/out of an excerpt: a cut mid-waveform clicks


@dataclass
class Source:
    """One annotated eval file, decoded, with its labels already made global."""

    uri: str
    samples: np.ndarray
    turns: list[Segment]
    scored: list[Interval]

    def cut(self, at_s: float) -> tuple[Source, Source]:
        """The file in two at ``at_s``, each part with its own turns and scored region."""
        at = int(round(at_s * RATE))
        cut_s = at / RATE

        def part(lo: float, hi: float) -> tuple[list[Segment], list[Interval]]:
            turns = [
                Segment(start=max(t.start, lo) - lo, end=min(t.end, hi) - lo, speaker=t.speaker)
                for t in self.turns
                if min(t.end, hi) > max(t.start, lo)
            ]
            scored = [(max(a, lo) - lo, min(b, hi) - lo) for a, b in self.scored if min(b, hi) > max(a, lo)]
            return turns, scored

        end = len(self.samples) / RATE
        return (
            Source(f"{self.uri}[:{cut_s:.2f}]", self.samples[:at], *part(0.0, cut_s)),
            Source(f"{self.uri}[{cut_s:.2f}:]", self.samples[at:], *part(cut_s, end)),
        )


@dataclass
class Piece:
    """One stretch of a built recording: where it lies and what it is."""

    kind: str  # speech | music | silence
    name: str
    start: float
    end: float


@dataclass
class LongForm:
    """A built recording with its reference, scored region and layout."""

    uri: str
    samples: np.ndarray
    reference: list[Segment] = field(default_factory=list)
    scored: list[Interval] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / RATE

    @property
    def speakers(self) -> set[str]:
        return {t.speaker for t in self.reference}

    @property
    def speech_s(self) -> float:
        """Seconds where at least one reference speaker talks (overlap counted once)."""
        return sum(e - s for s, e in merge([(t.start, t.end) for t in self.reference]))

    def summary(self) -> str:
        n_speech = sum(p.kind == "speech" for p in self.pieces)
        n_music = sum(p.kind == "music" for p in self.pieces)
        return (
            f"built {self.uri}: {self.duration:.1f} s ({self.duration / 60:.1f} min), "
            f"{n_speech} speech pieces + {n_music} music interludes, "
            f"{len(self.speakers)} reference speakers, {self.speech_s:.1f} s reference speech, "
            f"{sum(e - s for s, e in self.scored):.1f} s scored"
        )


# ---------------------------------------------------------------------------- inputs


def speaker_label(uri: str, label: str) -> str:
    """AMI participant ids are one person across meetings; any other label is local to its file."""
    return label if AMI_SPEAKER.match(label) else f"{uri}:{label}"


def load_sources(folder: Path, limit: int | None, workdir: Path) -> list[Source]:
    """Every file of a diarization folder that has an RTTM, decoded as production decodes it."""
    sources = []
    for f in annotated_diarization(folder, limit, workdir):
        duration = len(f.samples) / RATE
        turns = [
            Segment(start=t.start, end=min(t.end, duration), speaker=speaker_label(f.uri, t.speaker))
            for t in f.reference
            if t.start < duration
        ]
        scored = [(max(0.0, s), min(e, duration)) for s, e in f.scored if min(e, duration) > max(0.0, s)]
        sources.append(Source(f.uri, f.samples, turns, scored))
    return sources


def instrumental_clips(folder: Path) -> list[Path]:
    """Music clips whose labels are all ``music``: no speech in them that the reference would miss."""
    clips = []
    for audio in find_audio(folder / "audio", None):
        labels = folder / "labels" / f"{audio.stem}.csv"
        rows = read_labels(labels) if labels.is_file() else []
        if rows and all(label == "music" for _, _, label in rows):
            clips.append(audio)
    return clips


def load_interludes(folder: Path | None, workdir: Path) -> list[np.ndarray]:
    """Decoded instrumental clips of ``folder`` (none if there is no such folder)."""
    if folder is None or not (folder / "audio").is_dir():
        return []
    decoded = (decode(path, workdir) for path in instrumental_clips(folder))
    return [samples for samples in decoded if samples is not None and len(samples) > 0]


# ---------------------------------------------------------------------------- layout


def orders(n: int, repeats: int, rng: np.random.Generator) -> list[list[int]]:
    """``repeats`` seeded permutations of range(n), each differing from the one before
    when n > 1, so a repeat is never a copy of the previous layout."""
    layouts: list[list[int]] = []
    for _ in range(repeats):
        order = [int(i) for i in rng.permutation(n)]
        while n > 1 and layouts and order == layouts[-1]:
            order = [int(i) for i in rng.permutation(n)]
        layouts.append(order)
    return layouts


def shuffled_rounds(sources: list[Source], repeats: int, rng: np.random.Generator) -> list[list[Source]]:
    """``repeats`` rounds of every source, each in its own seeded order (``orders``)."""
    return [[sources[i] for i in order] for order in orders(len(sources), repeats, rng)]


def silence(rng: np.random.Generator) -> np.ndarray:
    return np.zeros(int(round(rng.uniform(*SILENCE_S) * RATE)), dtype=np.float32)


def music_excerpt(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded 5-15 s stretch of ``clip`` (all of it if shorter), faded in and out."""
    length = min(len(clip), int(round(rng.uniform(*MUSIC_S) * RATE)))
    start = int(rng.integers(0, len(clip) - length + 1))
    excerpt = clip[start : start + length].astype(np.float32, copy=True)
    fade = min(int(FADE_S * RATE), length // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        excerpt[:fade] *= ramp
        excerpt[-fade:] *= ramp[::-1]
    return excerpt


class Builder:
    """Appends pieces sample-exactly and shifts each piece's reference and scored region."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.chunks: list[np.ndarray] = []
        self.offset = 0  # samples
        self.reference: list[Segment] = []
        self.scored: list[Interval] = []
        self.pieces: list[Piece] = []

    def add(self, kind: str, name: str, samples: np.ndarray, source: Source | None = None) -> None:
        """Append one piece. Speech brings its turns and UEM; an interlude is scored whole."""
        start, end = self.offset / RATE, (self.offset + len(samples)) / RATE
        if source is None:
            self.scored.append((start, end))
        else:
            self.scored += [(start + s, start + e) for s, e in source.scored]
            self.reference += [
                Segment(start=start + t.start, end=start + t.end, speaker=t.speaker) for t in source.turns
            ]
        self.chunks.append(samples.astype(np.float32, copy=False))
        self.pieces.append(Piece(kind, name, start, end))
        self.offset += len(samples)

    def result(self) -> LongForm:
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)
        return LongForm(self.uri, samples, self.reference, merge(self.scored), self.pieces)


def build(
    uri: str,
    rounds: list[list[Source]],
    clips: list[np.ndarray],
    rng: np.random.Generator,
    music_every: int = 1,
    gain_db: tuple[float, float] | None = None,
    snr_db: tuple[float, float] | None = None,
) -> LongForm:
    """The rounds' speech pieces back to back, a silence between any two and, every
    ``music_every`` pieces, a music interlude inside it (none if there is no instrumental
    clip). With ``gain_db`` each speech piece is scaled by a seeded gain, with ``snr_db``
    white noise is added at a seeded signal-to-noise ratio."""
    builder = Builder(uri)
    n_gaps = n_music = 0
    for pieces in rounds:
        for source in pieces:
            if builder.pieces:
                builder.add("silence", "silence", silence(rng))
                n_gaps += 1
                if clips and n_gaps % music_every == 0:
                    clip = clips[n_music % len(clips)]  # cycle through the clips
                    builder.add("music", f"music{n_music % len(clips)}", music_excerpt(clip, rng))
                    builder.add("silence", "silence", silence(rng))
                    n_music += 1
            builder.add("speech", source.uri, vary(source.samples, rng, gain_db, snr_db), source)
    return builder.result()


def vary(
    samples: np.ndarray,
    rng: np.random.Generator,
    gain_db: tuple[float, float] | None,
    snr_db: tuple[float, float] | None,
) -> np.ndarray:
    """``samples`` at a seeded level, over seeded white noise (as they are without either)."""
    out = samples
    if gain_db is not None:
        out = out * np.float32(10 ** (rng.uniform(*gain_db) / 20))
    if snr_db is not None and len(out):
        rms = float(np.sqrt(np.mean(np.square(out, dtype=np.float64))))
        noise = rng.standard_normal(len(out)).astype(np.float32) * np.float32(
            rms * 10 ** (-rng.uniform(*snr_db) / 20)
        )
        out = out + noise
    return out


def build_podcast(podcast: Podcast, sources: list[Source], clips: list[np.ndarray], seed: int) -> LongForm:
    """As many rounds of the podcast's files as fill its length. Each round cuts every file
    in two at a seeded point and plays the parts in a seeded order, each at its own level
    and noise: the voices come back, never the same stretch of audio the same way (a
    recording that repeats itself exactly would make the same embeddings come back, which
    no real episode does)."""
    chosen = [s for s in sources if s.uri in podcast.sources]
    missing = set(podcast.sources) - {s.uri for s in chosen}
    if missing:
        raise SystemExit(f"{podcast.uri} needs {', '.join(sorted(missing))}, not in the diarization folder")
    round_s = sum(len(s.samples) / RATE + 2 * np.mean(SILENCE_S) for s in chosen)
    repeats = max(1, int(np.ceil(podcast.minutes * 60 / round_s)))
    rng = np.random.default_rng([seed, *(ord(c) for c in podcast.uri)])
    rounds = []
    for _ in range(repeats):
        parts = [part for s in chosen for part in s.cut(rng.uniform(*PODCAST_CUT) * len(s.samples) / RATE)]
        rounds.append([parts[i] for i in rng.permutation(len(parts))])
    return build(podcast.uri, rounds, clips, rng, PODCAST_MUSIC_EVERY, PODCAST_GAIN_DB, PODCAST_SNR_DB)


def merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted union of intervals (touching ones joined): one UEM line per scored stretch."""
    merged: list[Interval] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1] + 1e-9:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


# ---------------------------------------------------------------------------- output


def write(recording: LongForm, out: Path) -> None:
    """``audio/``, ``rttm/``, ``uem/`` for one recording, laid out like the eval folder."""
    for sub in ("audio", "rttm", "uem"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    uri = recording.uri
    sf.write(str(out / "audio" / f"{uri}.wav"), np.clip(recording.samples, -1, 1), RATE, subtype="PCM_16")
    reference = sorted(recording.reference, key=lambda t: (t.start, t.speaker))
    (out / "rttm" / f"{uri}.rttm").write_text(rttm_text(uri, reference))
    (out / "uem" / f"{uri}.uem").write_text(uem_text(uri, recording.scored))


def versions(limit: int | None) -> tuple[tuple[str, int], ...]:
    """The full x1 and x3 set, or for a short run one single layout of the first ``limit`` files
    (named apart so its figures are never mistaken for the full recordings')."""
    return VERSIONS if limit is None else ((f"longform-x1-first{limit}", 1),)


def build_longform(
    out: Path,
    diarization: Path | None = None,
    music: Path | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> list[LongForm]:
    """Build, write and summarise every version; returns the recordings built.

    ``diarization`` defaults to the shared eval set, ``music`` to the ``music`` folder
    beside it. Each version has its own generator, so adding a version never reshuffles
    another.
    """
    diarization = diarization or EVAL / "diarization"
    music = music or diarization.parent / "music"
    with tempfile.TemporaryDirectory(prefix="longform-") as tmp:
        sources = load_sources(diarization, limit, Path(tmp))
        clips = load_interludes(music, Path(tmp))
    if not sources:
        raise SystemExit(f"no annotated audio (audio/ with rttm/) in {diarization}")
    if not clips:
        print(f"   no instrumental clip in {music}: interludes are silence only")
    built = []
    for number, (uri, repeats) in enumerate(versions(limit)):
        rng = np.random.default_rng([seed, number])
        recording = build(uri, shuffled_rounds(sources, repeats, rng), clips, rng)
        write(recording, out)
        print(f"   {recording.summary()}")
        built.append(recording)
    return built


def build_podcasts(
    out: Path, diarization: Path | None = None, music: Path | None = None, seed: int = 0
) -> list[LongForm]:
    """Build, write and summarise the podcast-like set (PODCASTS)."""
    diarization = diarization or EVAL / "diarization"
    music = music or diarization.parent / "music"
    with tempfile.TemporaryDirectory(prefix="podcasts-") as tmp:
        sources = load_sources(diarization, None, Path(tmp))
        clips = load_interludes(music, Path(tmp))
    built = []
    for podcast in PODCASTS:
        recording = build_podcast(podcast, sources, clips, seed)
        write(recording, out)
        print(f"   {recording.summary()}")
        built.append(recording)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write audio/, rttm/, uem/ to")
    parser.add_argument("--diarization", type=Path, help=f"annotated files (default {EVAL / 'diarization'})")
    parser.add_argument("--music", type=Path, help="labelled music clips (default: music/ beside it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="only the first N files, one layout (a short run)")
    parser.add_argument("--podcasts", action="store_true", help="build the podcast-like set instead")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.podcasts:
        build_podcasts(args.out, args.diarization, args.music, args.seed)
    else:
        build_longform(args.out, args.diarization, args.music, args.seed, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
