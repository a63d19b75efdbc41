"""The default backends on real recordings: well-formed, and right where it is easy.

Exact quality figures (DER, music F1) are measured by the benchmarks; these tests check
properties that any working backend has and a broken one lacks, with ceilings set from
measured figures plus a stated margin.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from core import audio
from core.diarization.pretrained import WINDOW_S, PretrainedDiarization
from core.embedding import embed_segments, speaker_centroids
from core.models import Segment
from core.music import detect_music


def load16k(path: Path, tmp_path: Path) -> np.ndarray:
    wav = audio.transcode(path, tmp_path / f"{path.stem}.wav", 16_000)
    return audio.load_wav(wav)[0]


def reference_turns(rttm: Path) -> list[Segment]:
    turns = []
    for line in rttm.read_text().splitlines():
        f = line.split()
        turns.append(Segment(start=float(f[3]), end=float(f[3]) + float(f[4]), speaker=f[7]))
    return turns


def der(reference: list[Segment], hypothesis: list[Segment]) -> float:
    """DER as the benchmarks score it (pyannote.metrics, 0.5 s collar, overlap scored)."""
    from pyannote.core import Annotation
    from pyannote.core import Segment as PSegment
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = Annotation(), Annotation()
    for i, t in enumerate(reference):
        ref[PSegment(t.start, t.end), i] = t.speaker
    for i, t in enumerate(hypothesis):
        hyp[PSegment(t.start, t.end), i] = t.speaker
    return DiarizationErrorRate(collar=0.5, skip_overlap=False)(ref, hyp)


def test_default_diarization_is_well_formed_and_right_on_four_clear_speakers(eval_dir, tmp_path):
    name = "pyaa_diarizationExample"
    samples = load16k(eval_dir / "diarization" / "audio" / f"{name}.wav", tmp_path)
    duration = len(samples) / 16_000
    segments = PretrainedDiarization().diarize(samples, 16_000).segments
    reference = reference_turns(eval_dir / "diarization" / "rttm" / f"{name}.rttm")

    assert segments == sorted(segments, key=lambda s: (s.start, s.end))
    assert all(0 <= s.start < s.end <= duration + 0.01 for s in segments)
    assert all(re.fullmatch(r"SPEAKER_\d\d", s.speaker) for s in segments)
    assert len({s.speaker for s in segments}) == 4  # as the reference
    assert der(reference, segments) < 0.05  # measured 0.007

    # speech found where the reference has speech (frame recall at 10 ms)
    ref = np.zeros(int(duration * 100) + 1, bool)
    hyp = np.zeros_like(ref)
    for t in reference_turns(eval_dir / "diarization" / "rttm" / f"{name}.rttm"):
        ref[int(t.start * 100) : int(t.end * 100)] = True
    for s in segments:
        hyp[int(s.start * 100) : int(s.end * 100)] = True
    assert (ref & hyp).sum() / ref.sum() > 0.8


def test_silence_gives_no_segments():
    assert PretrainedDiarization().diarize(np.zeros(16_000 * 3, dtype=np.float32), 16_000).segments == []


def test_chunked_extraction_gives_the_whole_recording_result(eval_dir, tmp_path):
    """The diarize activity checkpoints per chunk: features extracted chunk by chunk
    (any chunk length) must give exactly what one pass over the recording gives."""
    samples = load16k(eval_dir / "diarization" / "audio" / "pyannote_debug_tst00.wav", tmp_path)
    backend = PretrainedDiarization()
    duration = len(samples) / 16_000
    whole_output = backend.diarize(samples, 16_000)
    whole = whole_output.segments
    chunk_s = 7.0  # not a multiple of the window step: windows belong to the chunk they start in
    chunks = [
        backend.extract(samples, 16_000, start, start + chunk_s, 4)
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


def test_embeddings_separate_speakers_on_reference_turns(eval_dir, tmp_path):
    name = "pyaa_diarizationExample"  # four speakers in clean turns
    samples = load16k(eval_dir / "diarization" / "audio" / f"{name}.wav", tmp_path)
    turns = [t for t in reference_turns(eval_dir / "diarization" / "rttm" / f"{name}.rttm") if t.duration > 1.0]
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
    """core.vad runs silero's encoder batched; it must give silero's own probabilities."""
    import torch
    from silero_vad import load_silero_vad

    from core import vad

    samples = load16k(eval_dir / "diarization" / "audio" / "pyannote_sample.wav", tmp_path)[: 16_000 * 10]
    model = load_silero_vad()
    padded = np.pad(samples, (0, (-len(samples)) % vad.VAD_CHUNK))
    reference = model.audio_forward(torch.from_numpy(padded), sr=16_000).squeeze(0).numpy()
    assert np.allclose(vad.speech_probabilities(samples), reference, atol=1e-4)
