"""Shards of training examples in the formats trainers read: Lhotse Shar and WebDataset.

One call writes one shard from one original: each example's span is read with a seek
(an original may be hours long) and stored as 16-bit FLAC, so the samples a trainer
reads are those of original.wav, bit for bit, unless a sample rate is asked for.

Files one call produces in ``out_dir`` (``shard_name``: letters, digits, ``_``, ``-``):

- lhotse-shar: ``cuts.{shard_name}.jsonl.gz`` and ``recording.{shard_name}.tar``
  (Lhotse's own SharWriter with sharding off and ``.{shard_name}`` as suffix). Shards
  of many calls can sit in one folder: ``CutSet.from_shar(in_dir=folder)`` pairs them
  by name, and ``from_shar(fields={"cuts": [...], "recording": [...]})`` takes lists.
- webdataset: ``{shard_name}.tar`` with ``{item_id}.flac`` and ``{item_id}.json``.

Files are written under a temporary folder next to ``out_dir`` and renamed in whole,
the cuts manifest last: a killed writer leaves no partial file under a final name,
and a ``cuts.X`` is only ever there with its ``recording.X`` (killed between the two
renames, a lone recording tar is left for the rerun to replace). Items keep the
caller's order. Tar
members carry mtime 0, so the same inputs give the same tar bytes (the gzip header of
a cuts manifest holds its write time).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.contracts.clips import Clip, Window

if TYPE_CHECKING:
    from lhotse import SupervisionSegment

FORMATS = ("lhotse-shar", "webdataset")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # no dots: both formats split names on them


@dataclass(frozen=True)
class ShardItem:
    """One example: its span of the original and its JSON-able fields (labels, speaker,
    video_id; for a window its turns and RTTM text)."""

    item_id: str
    start: float
    end: float
    fields: dict[str, Any]


# what _spans yields per item: the item, its int16 mono samples and their rate
Span = tuple[ShardItem, np.ndarray, int]


@dataclass(frozen=True)
class ShardInfo:
    files: list[Path]
    items: int
    audio_s: float
    bytes: int


def clip_item(clip: Clip) -> ShardItem:
    fields = {
        "video_id": clip.video_id,
        "speaker": clip.speaker,
        "source_start": clip.start,
        "source_end": clip.end,
        "language": clip.language,
        "language_p": clip.language_p,
        "speaker_id": clip.speaker_id,
    }
    return ShardItem(clip.clip_id, clip.start, clip.end, {**fields, "labels": dict(clip.labels)})


def window_item(window: Window) -> ShardItem:
    """Turns become one supervision each in a Shar cut; ``rttm`` is the same in text."""
    fields = {
        "video_id": window.video_id,
        "source_start": window.start,
        "source_end": window.end,
        "language": window.language,
        "language_p": window.language_p,
        "turns": [t.model_dump() for t in window.turns],
        "rttm": window.rttm(),
    }
    return ShardItem(window.window_id, window.start, window.end, fields)


def write_shard(
    fmt: str,
    items: list[ShardItem],
    original: Path,
    out_dir: Path,
    shard_name: str,
    sample_rate: int | None = None,
) -> ShardInfo:
    """One shard of ``items`` in ``out_dir`` (file names: see the module docstring).

    No items, no files: an empty shard would only be one more thing for a reader to
    open. ``sample_rate`` None keeps the original's rate (and its exact samples).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown shard format {fmt!r}; one of {', '.join(FORMATS)}")
    _check_names(shard_name, [item.item_id for item in items])
    if not items:
        return ShardInfo([], 0, 0.0, 0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{shard_name}.", dir=out_dir.parent))
    try:
        writer = _write_shar if fmt == "lhotse-shar" else _write_webdataset
        names, audio_s = writer(_spans(items, Path(original), sample_rate), staging, shard_name)
        files = []
        for name in names:  # the cuts manifest (the shard's index) comes last
            os.replace(staging / name, out_dir / name)
            files.append(out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ShardInfo(files, len(items), round(audio_s, 6), sum(f.stat().st_size for f in files))


def _check_names(shard_name: str, item_ids: list[str]) -> None:
    bad = [n for n in [shard_name, *item_ids] if not _NAME.match(n)]
    if bad:
        raise ValueError(f"names must be 1-128 characters of A-Z a-z 0-9 _ - (got {bad[:3]})")
    if len(set(item_ids)) != len(item_ids):
        raise ValueError("item ids must be unique within a shard")


def _spans(items: list[ShardItem], original: Path, sample_rate: int | None) -> Iterator[Span]:
    """(item, int16 samples, rate) per item, reading only each item's span."""
    import soundfile as sf

    with sf.SoundFile(str(original)) as handle:
        native = handle.samplerate
        rate = sample_rate or native
        for item in items:
            first = min(round(item.start * native), handle.frames)
            last = min(round(item.end * native), handle.frames)
            if last <= first:
                raise ValueError(f"{item.item_id}: no audio in [{item.start}, {item.end}] of {original.name}")
            handle.seek(first)
            samples = handle.read(last - first, dtype="int16", always_2d=True)
            mono = samples[:, 0] if samples.shape[1] == 1 else _to_int16(samples.mean(axis=1) / 32768)
            yield item, (mono if rate == native else _resample(mono, native, rate)), rate


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def _resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """soxr (band-limited, very high quality) where installed; torchaudio's windowed
    sinc otherwise, which every install of this project has."""
    x = samples.astype(np.float32) / 32768
    try:
        import soxr

        y = soxr.resample(x, rate_in, rate_out, quality="VHQ")
    except ImportError:
        import torch
        import torchaudio.functional as AF

        y = AF.resample(torch.from_numpy(x), rate_in, rate_out).numpy()
    return _to_int16(y)


def _encode(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def _supervisions(item: ShardItem, duration: float) -> list[SupervisionSegment]:
    from lhotse import SupervisionSegment

    def supervision(index: int, start: float, end: float, speaker: str) -> SupervisionSegment:
        start, end = max(0.0, start), min(duration, end)
        return SupervisionSegment(
            id=f"{item.item_id}-{index:04d}",
            recording_id=item.item_id,
            start=start,
            duration=round(end - start, 6),
            channel=0,
            speaker=speaker,
            language=item.fields.get("language"),
        )

    turns = item.fields.get("turns")
    if turns is None and "rttm" in item.fields:
        turns = _rttm_turns(item.fields["rttm"])
    if turns is not None:
        return [supervision(i, t["start"], t["end"], t["speaker"]) for i, t in enumerate(turns)]
    # a clip's speaker: its global id once linked (the same person in every video), else the video's label
    speaker = item.fields.get("speaker_id") or item.fields.get("speaker")
    return [supervision(0, 0.0, duration, speaker)] if speaker is not None else []


def _rttm_turns(text: str) -> list[dict[str, Any]]:
    """A window's turns from its RTTM text (Window.rttm: times relative to the window)."""
    turns = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            turns.append({"start": float(f[3]), "end": float(f[3]) + float(f[4]), "speaker": f[7]})
    return turns


def _write_shar(spans: Iterable[Span], staging: Path, shard_name: str) -> tuple[list[str], float]:
    """Through Lhotse's own SharWriter, so the shard is what ``CutSet.from_shar`` reads.
    Each cut holds its span as an in-memory WAV recording: the writer decodes it (a
    copy) and encodes the FLAC, as it does for any cut."""
    from lhotse import MonoCut, Recording
    from lhotse.shar import SharWriter

    audio_s = 0.0
    with SharWriter(
        staging, fields={"recording": "flac"}, shard_size=None, shard_suffix=f".{shard_name}"
    ) as w:
        for item, samples, rate in spans:
            recording = Recording.from_bytes(_encode(samples, rate, "WAV"), item.item_id)
            cut = MonoCut(
                id=item.item_id,
                start=0.0,
                duration=recording.duration,
                channel=0,
                recording=recording,
                supervisions=_supervisions(item, recording.duration),
                custom=dict(item.fields),
            )
            w.write(cut)
            audio_s += recording.duration
    return [f"recording.{shard_name}.tar", f"cuts.{shard_name}.jsonl.gz"], audio_s


def _write_webdataset(spans: Iterable[Span], staging: Path, shard_name: str) -> tuple[list[str], float]:
    import webdataset as wds

    name = f"{shard_name}.tar"
    audio_s = 0.0
    with open(staging / name, "wb") as stream, wds.TarWriter(stream, encoder=False, mtime=0.0) as w:
        for item, samples, rate in spans:
            duration = len(samples) / rate
            meta: dict[str, Any] = {
                **item.fields,
                "id": item.item_id,
                "sample_rate": rate,
                "duration": duration,
            }
            w.write(
                {
                    "__key__": item.item_id,
                    "flac": _encode(samples, rate, "FLAC"),
                    "json": json.dumps(meta, sort_keys=True).encode(),
                }
            )
            audio_s += duration
    return [name], audio_s
