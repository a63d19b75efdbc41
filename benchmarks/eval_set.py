"""Reading an eval folder laid out like ``../shared/eval``: its audio decoded as
production decodes it, and its annotations.

- diarization: ``audio/<uri>.*``, ``rttm/<uri>.rttm``, optional ``uem/<uri>.uem``;
- music: ``audio/<name>.*``, ``labels/<name>.csv`` (``start,end,label`` rows, may overlap).

The quality, long-form, labels, podcast and GPU check benchmarks all read through here.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.analysis.audio import ANALYSIS_RATE as RATE
from core.contracts.errors import PipelineError
from core.contracts.rttm import Interval, read_rttm, read_uem
from core.contracts.video import Segment


def read_labels(path: Path) -> list[tuple[float, float, str]]:
    """``start,end,label`` rows of a labels CSV (a header row is optional)."""
    rows = []
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            if len(row) < 3:
                continue
            try:
                rows.append((float(row[0]), float(row[1]), row[2].strip().lower()))
            except ValueError:  # the header
                continue
    return rows


def find_audio(folder: Path, limit: int | None) -> list[Path]:
    """One audio file per stem under ``folder``, sorted by name; ``limit`` keeps the first N."""
    files = sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith("."))
    return files[:limit] if limit else files


def decode(path: Path, workdir: Path) -> np.ndarray | None:
    """16 kHz mono float32 samples, decoded exactly as the download activity does.

    None (and a line saying why) for a file ffmpeg cannot decode, so one stray file in
    a folder does not stop the run. A WAV or FLAC already at 16 kHz mono is read as it
    is (ffmpeg would give the same samples): the GPU check's bundle holds such files,
    and the lent GPU machine has no ffmpeg.
    """
    import soundfile as sf

    from core.analysis.audio import load_wav, transcode

    if path.suffix.lower() in (".wav", ".flac"):
        info = sf.info(str(path))
        if info.samplerate == RATE and info.channels == 1:
            return load_wav(path)[0]
    try:
        wav = transcode(path, workdir / f"{path.stem}.16k.wav", RATE, 1)
    except PipelineError as exc:
        print(f"   {path.name}: {exc}, skipped")
        return None
    samples, _ = load_wav(wav)
    wav.unlink(missing_ok=True)
    return samples


def annotated_samples(
    folder: Path, annotations: str, suffix: str, limit: int | None, workdir: Path
) -> Iterator[tuple[str, Path, np.ndarray]]:
    """(stem, annotation file, samples) of each file under ``folder/audio`` that has its
    ``folder/<annotations>/<stem><suffix>`` and decodes; any other is named and skipped,
    so a half-annotated folder still gives a table."""
    for audio in find_audio(folder / "audio", limit):
        annotation = folder / annotations / f"{audio.stem}{suffix}"
        if not annotation.is_file():
            print(f"   {audio.stem}: no {annotations}/{audio.stem}{suffix}, skipped")
            continue
        samples = decode(audio, workdir)
        if samples is not None:
            yield audio.stem, annotation, samples


# --------------------------------------------------------------------- frame scoring


@dataclass
class AnnotatedFile:
    """One file of a diarization folder: its samples, reference turns and scored region."""

    uri: str
    samples: np.ndarray
    reference: list[Segment]
    scored: list[Interval]  # its UEM, else the whole file


def annotated_diarization(folder: Path, limit: int | None, workdir: Path) -> Iterator[AnnotatedFile]:
    """Each file of a diarization folder (``audio/``, ``rttm/``, optional ``uem/``) that has
    an RTTM and decodes."""
    for uri, rttm, samples in annotated_samples(folder, "rttm", ".rttm", limit, workdir):
        uem = folder / "uem" / f"{uri}.uem"
        scored = read_uem(uem) if uem.is_file() else [(0.0, len(samples) / RATE)]
        yield AnnotatedFile(uri, samples, read_rttm(rttm), scored)
