"""Shards (core.training.shards) read back by their consumers: Lhotse's Shar reader and the
webdataset package, never by a parser of our own.

The audio is the real-speech podcast of test_clips (48 kHz, 16-bit): at the native
rate a shard's samples must equal the original's span bit for bit.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.contracts.clips import ClipPolicy
from core.contracts.metadata import Metadata
from core.training.clips import FrameLevels, cut_clips, long_windows
from core.training.shards import FORMATS, ShardItem, clip_item, window_item, write_shard
from tests.podcast import build_podcast

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def podcast(tmp_path_factory):
    path, metadata = build_podcast(tmp_path_factory.mktemp("podcast"))
    clips = cut_clips(Metadata.model_validate(metadata), FrameLevels.from_wav(path), ClipPolicy())
    windows = long_windows(Metadata.model_validate(metadata), ClipPolicy(window_s=60.0))
    return path, metadata, clips, windows


def _span(original: Path, start: float, end: float) -> np.ndarray:
    with sf.SoundFile(str(original)) as handle:
        rate = handle.samplerate
        handle.seek(round(start * rate))
        return handle.read(round(end * rate) - round(start * rate), dtype="int16")


def _from_shar(out_dirs: list[Path], names: list[str]):
    from lhotse import CutSet

    return list(
        CutSet.from_shar(
            fields={
                "cuts": [str(d / f"cuts.{n}.jsonl.gz") for d, n in zip(out_dirs, names)],
                "recording": [str(d / f"recording.{n}.tar") for d, n in zip(out_dirs, names)],
            }
        )
    )


def _int16(audio: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(audio) * 32768).astype(np.int32)


def test_shar_clips_read_back_bit_exact_with_their_labels(podcast, tmp_path):
    original, _, clips, _ = podcast
    items = [clip_item(c) for c in clips]
    info = write_shard("lhotse-shar", items, original, tmp_path / "out", "pod1")
    assert [f.name for f in info.files] == ["recording.pod1.tar", "cuts.pod1.jsonl.gz"]
    assert info.items == len(clips) and info.bytes == sum(f.stat().st_size for f in info.files)
    assert info.audio_s == pytest.approx(sum(c.duration for c in clips), abs=len(clips) / 48_000)
    cuts = _from_shar([tmp_path / "out"], ["pod1"])
    assert [c.id for c in cuts] == [c.clip_id for c in clips]
    for cut, clip in zip(cuts, clips):
        assert cut.sampling_rate == 48_000
        assert abs(cut.duration - clip.duration) <= 1 / 48_000
        assert cut.custom["labels"] == clip.labels and cut.custom["video_id"] == "pod1"
        assert [(s.speaker, s.start, s.duration) for s in cut.supervisions] == [
            (clip.speaker, 0.0, cut.duration)
        ]
        audio = cut.load_audio()
        assert audio.shape[0] == 1
        assert np.array_equal(_int16(audio[0]), _span(original, clip.start, clip.end).astype(np.int32))
    with tarfile.open(tmp_path / "out" / "recording.pod1.tar") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".flac"))
        assert sf.info(io.BytesIO(tar.extractfile(member).read())).subtype == "PCM_16"


def test_shar_shards_of_two_calls_read_together_and_from_one_folder(podcast, tmp_path):
    from lhotse import CutSet

    original, _, clips, _ = podcast
    half = len(clips) // 2
    write_shard("lhotse-shar", [clip_item(c) for c in clips[:half]], original, tmp_path / "a", "pod1-0")
    write_shard("lhotse-shar", [clip_item(c) for c in clips[half:]], original, tmp_path / "b", "pod1-1")
    cuts = _from_shar([tmp_path / "a", tmp_path / "b"], ["pod1-0", "pod1-1"])
    assert [c.id for c in cuts] == [c.clip_id for c in clips]
    write_shard("lhotse-shar", [clip_item(c) for c in clips[:half]], original, tmp_path / "one", "pod1-0")
    write_shard("lhotse-shar", [clip_item(c) for c in clips[half:]], original, tmp_path / "one", "pod1-1")
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [
        "cuts.pod1-0.jsonl.gz",
        "cuts.pod1-1.jsonl.gz",
        "recording.pod1-0.tar",
        "recording.pod1-1.tar",
    ]
    together = CutSet.from_shar(in_dir=tmp_path / "one")
    assert [c.id for c in together] == [c.clip_id for c in clips]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a staging folder was left behind"


def test_shar_windows_carry_one_supervision_per_turn(podcast, tmp_path):
    original, _, _, windows = podcast
    write_shard("lhotse-shar", [window_item(w) for w in windows], original, tmp_path, "pod1-w")
    # a window item with only its RTTM text (no turns) gets the same supervisions
    bare = [ShardItem(w.window_id, w.start, w.end, {"rttm": w.rttm()}) for w in windows]
    write_shard("lhotse-shar", bare, original, tmp_path / "bare", "pod1-w")
    for dirs in ([tmp_path], [tmp_path / "bare"]):
        cuts = _from_shar(dirs, ["pod1-w"])
        assert len(cuts) == len(windows)
        for cut, window in zip(cuts, windows):
            assert cut.duration <= 60.0 + 1 / 48_000
            got = [(s.speaker, round(s.start, 3), round(s.end, 3)) for s in cut.supervisions]
            assert got == [(t.speaker, t.start, round(t.end, 3)) for t in window.turns]
            assert cut.custom["rttm"] == window.rttm()
    cut = _from_shar([tmp_path], ["pod1-w"])[0]
    assert cut.custom["turns"] == [t.model_dump() for t in windows[0].turns]


def test_webdataset_clips_read_back_bit_exact_with_their_labels(podcast, tmp_path):
    import webdataset as wds

    original, _, clips, _ = podcast
    info = write_shard("webdataset", [clip_item(c) for c in clips], original, tmp_path, "pod1")
    assert [f.name for f in info.files] == ["pod1.tar"] and info.items == len(clips)
    samples = list(wds.WebDataset(str(tmp_path / "pod1.tar"), shardshuffle=False))
    assert [s["__key__"] for s in samples] == [c.clip_id for c in clips]
    for sample, clip in zip(samples, clips):
        meta = json.loads(sample["json"])
        audio, rate = sf.read(io.BytesIO(sample["flac"]), dtype="int16")
        assert rate == meta["sample_rate"] == 48_000
        assert meta["labels"] == clip.labels and meta["speaker"] == clip.speaker
        assert abs(len(audio) / rate - clip.duration) <= 1 / 48_000
        assert np.array_equal(audio, _span(original, clip.start, clip.end))
    decoded = next(iter(wds.WebDataset(str(tmp_path / "pod1.tar"), shardshuffle=False).decode()))
    assert decoded["json"]["labels"] == clips[0].labels  # webdataset's own decoders


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_requested_rate_is_resampled(podcast, tmp_path, fmt):
    import webdataset as wds

    original, _, clips, _ = podcast
    info = write_shard(fmt, [clip_item(c) for c in clips[:4]], original, tmp_path, "pod1", sample_rate=16_000)
    if fmt == "lhotse-shar":
        got = [(c.sampling_rate, c.duration, c.load_audio()[0]) for c in _from_shar([tmp_path], ["pod1"])]
    else:
        got = []
        for sample in wds.WebDataset(str(tmp_path / "pod1.tar"), shardshuffle=False):
            audio, rate = sf.read(io.BytesIO(sample["flac"]), dtype="float32")
            got.append((rate, len(audio) / rate, audio))
    assert len(got) == 4
    for (rate, duration, audio), clip in zip(got, clips):
        assert rate == 16_000 and abs(duration - clip.duration) <= 1 / 16_000
        reference = _span(original, clip.start, clip.end)[::3].astype(np.float32) / 32768
        assert np.corrcoef(audio[: len(reference)], reference[: len(audio)])[0, 1] > 0.9  # the same speech
    assert info.audio_s == pytest.approx(sum(c.duration for c in clips[:4]), abs=4 / 16_000)


def test_a_failed_write_leaves_nothing_under_a_final_name(podcast, tmp_path):
    original, metadata, clips, _ = podcast
    beyond = ShardItem("pod1_late", metadata["duration_s"] + 5, metadata["duration_s"] + 9, {})
    for fmt in FORMATS:
        with pytest.raises(ValueError, match="no audio"):
            write_shard(fmt, [clip_item(c) for c in clips[:2]] + [beyond], original, tmp_path / "out", "pod1")
        assert list((tmp_path / "out").iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_same_inputs_same_shard_and_bad_names_refused(podcast, tmp_path):
    original, _, clips, _ = podcast
    items = [clip_item(c) for c in clips[:3]]
    first = write_shard("webdataset", items, original, tmp_path / "a", "pod1")
    again = write_shard("webdataset", items, original, tmp_path / "b", "pod1")
    assert first.files[0].read_bytes() == again.files[0].read_bytes()
    for fmt, name, its in [
        ("webdataset", "pod.1", items),
        ("webdataset", "pod1", [ShardItem("a.b", 0, 4, {})]),
        ("webdataset", "pod1", items + items[:1]),
        ("tfrecord", "pod1", items),
    ]:
        with pytest.raises(ValueError):
            write_shard(fmt, its, original, tmp_path / "c", name)
    for fmt in FORMATS:  # a video whose clips were all filtered out: no shard
        assert write_shard(fmt, [], original, tmp_path / "d", "pod1").files == []
