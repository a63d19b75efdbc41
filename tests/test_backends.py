"""The default backends on real recordings: well-formed, and right where it is easy.

Exact quality figures (DER, music F1) are measured by the benchmarks; these tests check
properties that any working backend has and a broken one lacks, with ceilings set from
measured figures plus a stated margin.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmarks.quality import der
from core.analysis import audio, campplus
from core.analysis.diarization.pretrained import WINDOW_S, PretrainedDiarization
from core.analysis.music import detect_music
from core.analysis.speaker_embeddings import embed_from_frames, embed_segments, speaker_centroids
from core.contracts.video import Segment


def load16k(path: Path, tmp_path: Path) -> np.ndarray:
    wav = audio.transcode(path, tmp_path / f"{path.stem}.wav", 16_000)
    return audio.load_wav(wav)[0]


def reference_turns(rttm: Path) -> list[Segment]:
    turns = []
    for line in rttm.read_text().splitlines():
        f = line.split()
        turns.append(Segment(start=float(f[3]), end=float(f[3]) + float(f[4]), speaker=f[7]))
    return turns


def alternating(duration: float, period: float) -> list[Segment]:
    """The degenerate hypothesis: everything is speech, two labels taking turns every
    ``period`` seconds (a period longer than the file: one label throughout)."""
    starts = np.arange(0.0, duration, period)
    return [
        Segment(start=float(t), end=float(min(t + period, duration)), speaker=f"SPEAKER_0{i % 2}")
        for i, t in enumerate(starts)
    ]


DEGENERATE_PERIODS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 1e6)  # the best of these is the bar to beat


@dataclass
class DevFile:
    duration: float
    reference: list[Segment]
    scored: list[tuple[float, float]]
    segments: list[Segment]


@pytest.fixture(scope="module")
def dev_set(eval_dir, tmp_path_factory) -> dict[str, DevFile]:
    """The default backend's output on every shared dev file (diarized once, ~4 min of audio)."""
    from core.contracts.rttm import read_uem

    tmp = tmp_path_factory.mktemp("dev")
    backend = PretrainedDiarization()
    files = {}
    for wav in sorted((eval_dir / "diarization" / "audio").glob("*.wav")):
        samples = load16k(wav, tmp)
        duration = len(samples) / 16_000
        uem = eval_dir / "diarization" / "uem" / f"{wav.stem}.uem"
        files[wav.stem] = DevFile(
            duration=duration,
            reference=reference_turns(eval_dir / "diarization" / "rttm" / f"{wav.stem}.rttm"),
            scored=read_uem(uem) if uem.is_file() else [(0.0, duration)],
            segments=backend.diarize(samples, 16_000).segments,
        )
    return files


def test_default_diarization_is_well_formed_and_right_on_four_clear_speakers(dev_set):
    """pyaa_diarizationExample: four speakers in clean turns, speech throughout. Measured
    (2026-11-29, this CPU): 4 speakers, DER 0.7 %, speech recall 0.977; the degenerate
    "all speech, two labels taking turns" scores 57.5 % at best."""
    dev = dev_set["pyaa_diarizationExample"]
    segments, reference, duration = dev.segments, dev.reference, dev.duration

    assert segments == sorted(segments, key=lambda s: (s.start, s.end))
    assert all(0 <= s.start < s.end <= duration + 0.01 for s in segments)
    assert all(re.fullmatch(r"SPEAKER_\d\d", s.speaker) for s in segments)
    assert len({s.speaker for s in segments}) == 4  # as the reference
    found = der(reference, segments)
    assert found < 0.05  # measured 0.007: ceiling = measured + 4.3 points
    degenerate = min(der(reference, alternating(duration, p)) for p in DEGENERATE_PERIODS_S)
    assert found < degenerate - 0.4, (found, degenerate)  # measured 0.007 vs 0.575

    # speech found where the reference has speech (frame recall at 10 ms); the
    # reference is speech almost throughout, so recall alone would not tell the
    # degenerate hypothesis apart: the DER above does
    ref = np.zeros(int(duration * 100) + 1, bool)
    hyp = np.zeros_like(ref)
    for t in reference:
        ref[int(t.start * 100) : int(t.end * 100)] = True
    for s in segments:
        hyp[int(s.start * 100) : int(s.end * 100)] = True
    assert (ref & hyp).sum() / ref.sum() > 0.95  # measured 0.977


# The default backend on the shared dev set, measured 2026-12-06 on this CPU (step 2.5 s,
# with the silero veto; `benchmarks.quality --diarization ../shared/eval/diarization`
# prints the same figures): DER % over the file's UEM, and speakers found. The
# reference counts are in the RTTMs.
DEV_MEASURED = {
    "falcon_test": (0.00, 3),  # reference 3
    "pyaa_diarizationExample": (0.72, 4),  # 4
    "pyannote_debug_dev00": (19.56, 2),  # 2
    "pyannote_debug_dev01": (41.82, 2),  # 2
    "pyannote_debug_trn07": (57.33, 3),  # 4
    "pyannote_debug_trn08": (34.57, 2),  # 4: the one file off by 2
    "pyannote_debug_tst00": (43.40, 3),  # 4
    "pyannote_sample": (46.39, 1),  # 2
}
DEV_TOTAL_DER = 25.98  # pooled over the 8 files
DER_MARGIN_FILE = 15.0  # points: a 30 s excerpt moves a lot when one turn changes cluster
DER_MARGIN_TOTAL = 5.0  # points
BEAT_DEGENERATE_FILE = 5.0  # points; the closest measured gap is 12.7 (dev00: 19.6 vs 32.3)
BEAT_DEGENERATE_TOTAL = 40.0  # points; measured 26.0 vs 80.1


def test_default_diarization_holds_its_measured_quality_on_the_dev_set(dev_set):
    """A regression of the default backend fails here, not only in a benchmark nobody
    reads: per file, DER at most measured + 15 points and the speaker count within one of
    the reference (within the measured miss where that is larger: trn08 finds 2 of 4);
    pooled, DER at most measured + 5 points. And it must beat, file by file and pooled, the
    degenerate hypothesis "everything is speech, two labels taking turns" (the best of
    several turn lengths), which earlier loose checks could not tell from a diarizer."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    assert set(dev_set) == set(DEV_MEASURED), "the shared dev set changed: measure it again"
    pooled = DiarizationErrorRate(collar=0.5, skip_overlap=False)
    pooled_degenerate = {
        p: DiarizationErrorRate(collar=0.5, skip_overlap=False) for p in DEGENERATE_PERIODS_S
    }
    report = []
    for uri, dev in dev_set.items():
        measured_der, measured_count = DEV_MEASURED[uri]
        found = 100 * der(dev.reference, dev.segments, dev.scored, pooled)
        degenerate = min(
            100 * der(dev.reference, alternating(dev.duration, p), dev.scored, pooled_degenerate[p])
            for p in DEGENERATE_PERIODS_S
        )
        count, ref_count = len({s.speaker for s in dev.segments}), len({t.speaker for t in dev.reference})
        report.append(
            f"{uri}: DER {found:.2f} % (measured {measured_der:.2f}, degenerate {degenerate:.1f}), "
            f"speakers {count}/{ref_count} (measured {measured_count})"
        )
        assert found <= measured_der + DER_MARGIN_FILE, report[-1]
        assert found <= degenerate - BEAT_DEGENERATE_FILE, report[-1]
        assert abs(count - ref_count) <= max(1, abs(measured_count - ref_count)), report[-1]
    total = 100 * abs(pooled)
    degenerate_total = min(100 * abs(m) for m in pooled_degenerate.values())
    print(
        "\n" + "\n".join(report) + f"\nTOTAL DER {total:.2f} % (degenerate at best {degenerate_total:.2f} %)"
    )
    assert total <= DEV_TOTAL_DER + DER_MARGIN_TOTAL, total
    assert total <= degenerate_total - BEAT_DEGENERATE_TOTAL, (total, degenerate_total)


def test_silence_gives_no_segments():
    assert PretrainedDiarization().diarize(np.zeros(16_000 * 3, dtype=np.float32), 16_000).segments == []


def test_chunked_extraction_gives_the_whole_recording_result(eval_dir, tmp_path):
    """The diarize activity checkpoints per chunk, reading each chunk's audio from disk
    (``audio.Recording``): features extracted so, chunk by chunk (any chunk length),
    must give exactly what one pass over the recording in memory gives."""
    wav = audio.transcode(
        eval_dir / "diarization" / "audio" / "pyannote_debug_tst00.wav", tmp_path / "a.wav", 16_000
    )
    samples = audio.load_wav(wav)[0]
    backend = PretrainedDiarization()
    duration = len(samples) / 16_000
    whole_output = backend.diarize(samples, 16_000)
    whole = whole_output.segments
    chunk_s = 7.0  # not a multiple of the window step: windows belong to the chunk they start in
    with audio.Recording(wav) as recording:
        chunks = [
            backend.extract(recording, 16_000, start, start + chunk_s, 4)
            for start in np.arange(0, duration + WINDOW_S, chunk_s)
        ]
    assert sum(len(c["window_start_s"]) for c in chunks) == len(backend.window_starts(len(samples)))
    chunked_output = backend.finish(chunks, duration)
    chunked = chunked_output.segments
    assert chunked_output.uncertain == whole_output.uncertain
    assert whole_output.uncertain, "tst00 has overlapped speech: some spans are uncertain"
    assert len(chunked) == len(whole)
    for a, b in zip(chunked, whole):
        assert a.speaker == b.speaker and abs(a.start - b.start) < 0.02 and abs(a.end - b.end) < 0.02

    # the CAM++ frames the chunks keep for the embed stage tile the recording once, as
    # one pass over it computes them (half precision)
    kept = [(int(c["first_frame"]), c["frames"]) for c in chunks if c["frames"].size]
    assert kept[0][0] == 0 and all(a + f.shape[1] == b for (a, f), (b, _) in zip(kept, kept[1:]))
    first, frames = campplus.frame_features(samples, 0, len(samples))
    assert abs(frames.shape[1] - campplus.num_frames(len(samples))) <= 2  # fbank stops short of the end
    tiled = np.concatenate([f for _, f in kept], axis=1).astype(np.float32)
    assert first == 0 and tiled.shape == frames.shape
    assert np.abs(tiled - frames).max() <= 1e-3 * np.abs(frames).max()


def test_embeddings_separate_speakers_on_reference_turns(eval_dir, tmp_path):
    name = "pyaa_diarizationExample"  # four speakers in clean turns
    samples = load16k(eval_dir / "diarization" / "audio" / f"{name}.wav", tmp_path)
    turns = [
        t for t in reference_turns(eval_dir / "diarization" / "rttm" / f"{name}.rttm") if t.duration > 1.0
    ]
    vectors = embed_segments(samples, turns)

    assert vectors.shape == (len(turns), 192)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    same = [sims[i, j] for i in range(len(turns)) for j in range(i) if turns[i].speaker == turns[j].speaker]
    diff = [sims[i, j] for i in range(len(turns)) for j in range(i) if turns[i].speaker != turns[j].speaker]
    assert same and diff
    assert np.mean(same) > np.mean(diff) + 0.1
    ordered = np.mean([a > b for a in same for b in diff])  # P(same-speaker pair is closer)
    assert ordered > 0.9

    centroids = speaker_centroids(turns, vectors)
    assert sorted(centroids) == sorted({t.speaker for t in turns})
    assert all(len(v) == 192 for v in centroids.values())


def test_embeddings_pooled_from_one_pass_separate_speakers_like_a_pass_per_turn(eval_dir, tmp_path):
    """The embed stage pools segments from the diarization's frames (fbank normalised
    per 10 s block, not per turn): other vectors, as well ordered."""
    name = "pyaa_diarizationExample"
    samples = load16k(eval_dir / "diarization" / "audio" / f"{name}.wav", tmp_path)
    turns = [
        t for t in reference_turns(eval_dir / "diarization" / "rttm" / f"{name}.rttm") if t.duration > 1.0
    ]
    first, frames = campplus.frame_features(samples, 0, len(samples))
    pooled = embed_from_frames(frames, first, turns, len(samples))
    by_turn = embed_segments(samples, turns)

    assert pooled.shape == by_turn.shape and np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-4)
    sims = pooled @ pooled.T
    same = [sims[i, j] for i in range(len(turns)) for j in range(i) if turns[i].speaker == turns[j].speaker]
    diff = [sims[i, j] for i in range(len(turns)) for j in range(i) if turns[i].speaker != turns[j].speaker]
    assert np.mean([a > b for a in same for b in diff]) > 0.9
    assert np.mean((pooled * by_turn).sum(axis=1)) > 0.85  # measured 0.95: the same voices


@pytest.mark.parametrize(
    "clip, low, high",
    [("librosa_vibeace.ogg", 0.6, 1.0), ("librosa_brahms.ogg", 0.5, 1.0), ("librosa_libri1.ogg", 0.0, 0.0)],
)
def test_music_detector_on_music_and_on_speech(eval_dir, tmp_path, clip, low, high):
    samples = load16k(eval_dir / "music" / "audio" / clip, tmp_path)
    regions = detect_music(samples, 16_000)
    flagged = sum(r.end - r.start for r in regions) / (len(samples) / 16_000)
    assert low <= flagged <= high
    assert all(0 <= r.probability <= 1 and r.start < r.end for r in regions)


def test_batched_vad_matches_silero_step_by_step(eval_dir, tmp_path):
    """core.analysis.vad runs silero's encoder batched; it must give silero's own probabilities."""
    import torch
    from silero_vad import load_silero_vad

    from core.analysis import vad

    samples = load16k(eval_dir / "diarization" / "audio" / "pyannote_sample.wav", tmp_path)[: 16_000 * 10]
    model = load_silero_vad()
    padded = np.pad(samples, (0, (-len(samples)) % vad.VAD_CHUNK))
    reference = model.audio_forward(torch.from_numpy(padded), sr=16_000).squeeze(0).numpy()
    assert np.allclose(vad.speech_probabilities(samples), reference, atol=1e-4)


def _speech_frames(segments: list[Segment], duration: float) -> np.ndarray:
    """10 ms frames covered by any turn."""
    covered = np.zeros(int(np.ceil(duration * 100)) + 1, dtype=bool)
    for s in segments:
        covered[int(round(s.start * 100)) : int(round(s.end * 100))] = True
    return covered


@pytest.mark.parametrize("clip", ["librosa_brahms.ogg", "librosa_libri1.ogg", "ina_musanmix.wav"])
def test_the_speech_gate_only_takes_speech_away_and_keeps_speech(eval_dir, tmp_path, clip):
    """silero's veto (core/analysis/diarization/speech_gate.py) removes frames and never adds any:
    the gated turns lie inside the ungated ones (chunks without silero's opinion, such as
    checkpoints stored before the gate existed, are finished without it). On read speech
    it keeps at least 95 % of the speech; on orchestral music it removes some of what
    segmentation took for speech."""
    samples = load16k(eval_dir / "music" / "audio" / clip, tmp_path)
    duration = len(samples) / 16_000
    backend = PretrainedDiarization()
    chunk = backend.extract(samples, 16_000, 0.0, duration + WINDOW_S, 8)
    gated = _speech_frames(backend.finish([chunk], duration).segments, duration)
    ungated_chunk = {name: value for name, value in chunk.items() if name != "speech_prob"}
    ungated = _speech_frames(backend.finish([ungated_chunk], duration).segments, duration)
    assert not (gated & ~ungated).any(), "the veto added speech"
    if clip == "librosa_libri1.ogg":
        assert ungated.sum() > 100 * 10 and gated.sum() >= 0.95 * ungated.sum()
    if clip == "librosa_brahms.ogg":
        assert gated.sum() < ungated.sum(), "the veto removed nothing from music"


def test_the_speech_gate_vetoes_a_quiet_stretch_and_leaves_frames_no_window_judged():
    from core.analysis.diarization.speech_gate import VETO_PROB, VETO_SMOOTH_S, speech_mask

    step = 0.016
    prob = np.full(1000, 0.5)
    quiet = slice(300, 300 + int(3 * VETO_SMOOTH_S / step))
    prob[quiet] = 0.0
    seen = np.ones(1000)
    seen[900:] = 0  # no window owns these frames: nothing to veto with
    mask = speech_mask(prob * seen, seen, step)
    assert mask[:250].all() and mask[900:].all()
    middle = (quiet.start + quiet.stop) // 2
    assert not mask[middle - 10 : middle + 10].any(), f"a stretch under {VETO_PROB} keeps no speech"
    lone = np.zeros(1000)
    lone[500] = 0.5  # one 16 ms blip of speech probability in silence is smoothed away
    assert not speech_mask(lone, np.ones(1000), step)[500]


def test_the_onnxruntime_models_decide_as_the_torch_models_do(eval_dir, tmp_path):
    """Without CUDA, segmentation-3.0 and the CAM++ trunk run in onnxruntime, exported
    from the shipped weights (core.analysis.exported): held to the PyTorch reference on
    real speech, the same local speaker decisions and the same frames (float rounding)."""
    from core.analysis import exported

    samples = load16k(eval_dir / "diarization" / "audio" / "pyannote_debug_tst00.wav", tmp_path)
    starts = PretrainedDiarization().window_starts(len(samples))
    try:
        exported.use("torch")
        reference = PretrainedDiarization()
        assert reference.fast_model is None
        ref_segmentation, ref_single = reference._segment(samples, starts, 4)
        _, ref_frames = campplus.frame_features(samples, 0, len(samples))

        exported.use("onnxruntime", tmp_path / "onnx", bf16="off")
        fast = PretrainedDiarization()
        assert fast.fast_model is not None and campplus.trunk_session() is not None
        segmentation, single = fast._segment(samples, starts, 4)
        _, frames = campplus.frame_features(samples, 0, len(samples))
        assert sorted(p.name.split("-")[0] for p in (tmp_path / "onnx").glob("*.onnx")) == [
            "campplus",
            "segmentation",
        ]
    finally:
        exported.use("onnxruntime", exported.DEFAULT_CACHE_DIR)

    assert (segmentation == ref_segmentation).mean() >= 0.999  # measured: identical
    assert np.abs(single.astype(np.float32) - ref_single.astype(np.float32)).max() < 0.01
    assert frames.shape == ref_frames.shape
    assert np.abs(frames - ref_frames).max() <= 1e-4 * np.abs(ref_frames).max()


def test_the_cam_trunk_in_bf16_stays_within_its_tolerance(eval_dir, tmp_path):
    """With ``cpu_bf16=auto``, on a CPU with bf16 units, the CAM++ trunk runs in torch
    under bf16 autocast (core.analysis.exported; fp32 is the default); ``on`` forces it
    where bf16 would be emulated, so this runs on any CPU. Held to the fp32 onnxruntime
    trunk on real speech: all frames but a tail of BF16_FRAME_TAIL within BF16_FRAME_COSINE,
    their mean within 0.999, and the turns' embeddings pooled from the frames within 0.999
    (measured: 0.9995 and more)."""
    from core.analysis import exported

    name = "pyaa_diarizationExample"
    samples = load16k(eval_dir / "diarization" / "audio" / f"{name}.wav", tmp_path)
    turns = [
        t for t in reference_turns(eval_dir / "diarization" / "rttm" / f"{name}.rttm") if t.duration > 1.0
    ]
    flags = set(re.findall(r"\w+", Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n")[0]))
    try:
        exported.use("onnxruntime", tmp_path / "onnx")  # the default: fp32
        assert not exported.bf16() and campplus.trunk_session() is not None
        first, reference = campplus.frame_features(samples, 0, len(samples))
        exported.use("onnxruntime", tmp_path / "onnx", bf16="on")
        assert exported.bf16() and campplus.trunk_session() is None
        assert exported.describe() == "onnxruntime, CAM++ trunk in torch bf16"
        _, frames = campplus.frame_features(samples, 0, len(samples))
        exported.use("onnxruntime", tmp_path / "onnx", bf16="auto")
        assert exported.bf16() == bool({"avx512_bf16", "amx_tile"} & flags)
    finally:
        exported.use("onnxruntime", exported.DEFAULT_CACHE_DIR)

    assert frames.dtype == np.float32 and frames.shape == reference.shape
    cosine = (frames * reference).sum(axis=0) / (
        np.linalg.norm(frames, axis=0) * np.linalg.norm(reference, axis=0)
    )
    assert np.quantile(cosine, exported.BF16_FRAME_TAIL) >= exported.BF16_FRAME_COSINE
    assert cosine.mean() >= 0.999
    assert not np.array_equal(frames, reference)  # bf16 did run: it rounds
    pooled = embed_from_frames(frames, first, turns, len(samples))
    pooled_reference = embed_from_frames(reference, first, turns, len(samples))
    assert (pooled * pooled_reference).sum(axis=1).min() >= 0.999


def test_the_block_recheck_moves_speech_between_speakers_and_never_adds_or_drops_it(eval_dir, tmp_path):
    """The block re-check (core/analysis/diarization/clustering.py, recheck_blocks) only
    changes who a stretch of speech belongs to: on a real two-speaker meeting excerpt the
    frames with any speaker are the same with it as without it (chunks without block
    embeddings, such as checkpoints stored before they existed, are finished without it),
    and it does relabel some speech there."""
    from core.analysis.diarization import BLOCK_EMBEDDINGS

    samples = load16k(eval_dir / "diarization" / "audio" / "pyannote_debug_dev00.wav", tmp_path)
    duration = len(samples) / 16_000
    backend = PretrainedDiarization()
    chunk = backend.extract(samples, 16_000, 0.0, duration + WINDOW_S, 8)
    assert (~np.isnan(chunk[BLOCK_EMBEDDINGS].astype(np.float32)).any(axis=-1)).sum() > 0
    rechecked = backend.finish([chunk], duration).segments
    plain = backend.finish([{k: v for k, v in chunk.items() if k != BLOCK_EMBEDDINGS}], duration).segments
    assert (_speech_frames(rechecked, duration) == _speech_frames(plain, duration)).all()
    by_speaker = {(round(s.start, 2), round(s.end, 2), s.speaker) for s in rechecked}
    assert by_speaker != {(round(s.start, 2), round(s.end, 2), s.speaker) for s in plain}
