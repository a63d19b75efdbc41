"""Compute seconds per audio minute of every pipeline stage, on real speech, on this machine.

    python -m benchmarks.speed [--backend pretrained|pyannote|both] [--minutes M] [--audio FILE]
        [--step S ...] [--pyannote-model PATH_OR_ID]

Why: worker sizing and GPU-vs-CPU decisions need per-stage costs before any video is
run, and ``benchmarks.stage_costs`` only reads them back afterwards. Each stage is
timed through the same functions the activities call, on M minutes (default 2) built
by concatenating real recordings (/work/shared/eval/diarization/audio, else the repo's
samples/audio, or ``--audio FILE``), stored as a 44.1 kHz stereo WAV as a download
would give, so decoding and resampling are part of the figure.

Figures: CPU seconds (process CPU over all threads, plus ffmpeg's CPU as a child
process) and wall seconds, both per audio minute. Models are loaded and every stage
is run once on a 10 s clip before timing, so first-load time is excluded. On a CUDA
machine, GPU work is synchronised before each clock is read; there the wall figure is
the one that matters (CPU time does not count GPU time).

Batch sizes are the ones a worker on this machine would use (its GPU class profile,
with the settings' overrides), and are printed. With ``--backend pyannote`` the
pyannote backend is timed side by side at its own default batch sizes, at the worker
profile's, and at 16 and 32; ``--backend both`` times the default backend too, in the
same run on the same audio, with a whole-pipeline line for each. ``--step`` times the
default backend at several segmentation steps (its speed/quality operating points;
benchmarks.quality gives the DER of each with PIPELINE_DIARIZATION_STEP_S). Without
``--pyannote-model`` a local model (real segmentation, random embedding) with the
community-1 layout is built (benchmarks/pyannote_local.py): its speed is representative, its
output is not.
"""

from __future__ import annotations

import argparse
import inspect
import os
import resource
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # pyannote telemetry: no network

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL_AUDIO = REPO_ROOT.parent / "shared" / "eval" / "diarization" / "audio"
SAMPLE_AUDIO = REPO_ROOT / "samples" / "audio"
RATE = 16_000
SOURCE_RATE = 44_100  # the test file's rate: a typical podcast download
WARMUP_S = 10.0
PIPELINE_PARTS = ("decode", "diarize", "embed", "music", "labels")


# ----------------------------------------------------------------------------- clocks


@dataclass
class Timing:
    cpu: float
    wall: float

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.cpu + other.cpu, self.wall + other.wall)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def cpu_seconds() -> float:
    """This process's CPU time (all threads) plus that of finished children (ffmpeg)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn, *args, **kwargs):
    """(fn's result, Timing); GPU work is finished before the clocks are read."""
    _sync()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    result = fn(*args, **kwargs)
    _sync()
    return result, Timing(cpu_seconds() - cpu0, time.perf_counter() - wall0)


# ------------------------------------------------------------------------- test audio


def source_recordings(audio: Path | None) -> list[Path]:
    """The recordings to concatenate: --audio, else the eval set, else the repo samples."""
    if audio:
        return [audio]
    for folder, pattern in ((EVAL_AUDIO, "*.wav"), (SAMPLE_AUDIO, "*.ogg")):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    raise SystemExit(f"no audio found in {EVAL_AUDIO} or {SAMPLE_AUDIO}; pass --audio FILE")


def decode(path: Path, workdir: Path, rate: int | None = None):
    """16 kHz mono analysis samples, exactly as the download activity makes them; with
    ``rate``, the path of that copy instead (the 48 kHz original)."""
    from core.analysis.audio import ANALYSIS_RATE, load_wav, transcode

    if rate is not None:
        return transcode(path, workdir / f"copy_{rate}.wav", rate, 1)
    samples, _ = load_wav(transcode(path, workdir / "analysis_16k.wav", ANALYSIS_RATE, 1))
    return samples


class QualityLabeller:
    """The labels stage's work on one recording, as activities/labels.py does it."""

    def __init__(self, block_s: float):
        from core.analysis import quality

        self.models = quality.QualityModels(block_s=block_s)

    def __call__(self, samples: np.ndarray, original: Path, segments: list, regions: list) -> list:
        from core.analysis import quality

        events = quality.detect_events(samples, RATE)
        spans = [(s.start, s.end) for s in segments]
        music = [(r.start, r.end, r.probability) for r in regions]
        return self.models.label_segments(
            original, samples, RATE, spans, music, events, [s.speaker for s in segments]
        )


def build_test_audio(sources: list[Path], minutes: float, workdir: Path) -> tuple[Path, int]:
    """``minutes`` of the sources back to back (repeated if short), as a 44.1 kHz stereo WAV.

    Returns the file and how many of the sources it uses.
    """
    from core.analysis.audio import transcode

    want = int(round(minutes * 60 * RATE))
    decoded = [decode(src, workdir) for src in sources]
    if not any(len(d) for d in decoded):
        raise SystemExit("the source recordings hold no audio")
    pieces, have, i = [], 0, 0
    while have < want:
        pieces.append(decoded[i % len(decoded)])
        have += len(pieces[-1])
        i += 1
    mono = workdir / "concat_16k.wav"
    sf.write(str(mono), np.concatenate(pieces)[:want], RATE, subtype="PCM_16")
    return transcode(mono, workdir / "test_audio.wav", SOURCE_RATE, channels=2), min(i, len(decoded))


# ----------------------------------------------------------------------------- stages


@dataclass
class Row:
    stage: str
    device: str
    timing: Timing
    note: str = ""


def activity_profile(settings):
    """The batch sizes a worker on this machine would use: its GPU class's profile with
    the settings' overrides, looked up exactly as the worker does at start."""
    from core.contracts.gpu_profiles import worker_profile
    from workers.gpu import detect_gpus, worker_class

    gpu_class = worker_class(settings.worker_gpu_class, detect_gpus())
    return worker_profile(gpu_class, settings.embedding_batch_size, settings.segmentation_batch_size)


def speakers(segments) -> str:
    return f"{len(segments)} turns, {len({s.speaker for s in segments})} speakers"


def time_pretrained(samples: np.ndarray, clip: np.ndarray, batch: int, step_s: float):
    """The default backend part by part and whole: (rows, segments, whole Timing, the
    CAM++ frames it keeps for the embed stage and the index of the first)."""
    from core.analysis import campplus
    from core.analysis.diarization.pretrained import OperatingPoint, PretrainedDiarization

    backend = PretrainedDiarization(OperatingPoint(step_s))
    backend.diarize(clip, RATE, batch_size=batch)  # warm-up: loads both models
    duration = len(samples) / RATE
    starts = backend.window_starts(len(samples))
    _, t_segment = timed(backend._segment, samples, starts, batch)
    features, t_extract = timed(backend.extract, samples, RATE, 0.0, duration + 1, batch)
    (clusters, _), t_cluster = timed(backend.cluster, features["segmentation"], features["embeddings"])
    output, t_whole = timed(backend.diarize, samples, RATE, batch_size=batch)
    segments = output.segments
    device = str(campplus.device())
    frames = (features["frames"], int(features["first_frame"]))  # what the embed stage pools from
    rows = [
        Row(
            "  local segmentation (segmentation-3.0)",
            device,
            t_segment,
            f"{len(starts)} windows of 10 s every {step_s:g} s, batch {batch}",
        ),
        Row("  segmentation + CAM++ local embeddings", device, t_extract, "one CAM++ pass over the audio"),
        Row("  clustering", "cpu", t_cluster, f"{int(clusters.max()) + 1} clusters"),
        Row(f"diarization, step {step_s:g} s (whole)", device, t_whole, speakers(segments)),
    ]
    return rows, segments, t_whole, frames


def time_pyannote(model: str, token: str | None, samples, clip, profile_batch: int):
    """The pyannote backend at its default batch sizes, at the worker profile's, and at 16 and 32.

    One pipeline is loaded; the default runs first, since a ``batch_size`` passed to
    ``diarize`` stays set on the pipeline. Returns (rows, segments and Timing at the
    profile's batch, which is what the diarize activity runs).
    """
    from core.analysis.diarization.pyannote_backend import PyannoteDiarization

    # pyannote probes its embedding model with a few samples (one pooling frame): harmless
    warnings.filterwarnings("ignore", message=r".*degrees of freedom", category=UserWarning)
    params = inspect.signature(PyannoteDiarization).parameters
    default = (params["segmentation_batch_size"].default, params["embedding_batch_size"].default)
    backend = PyannoteDiarization(model, token)
    backend.diarize(clip, RATE)  # warm-up
    # (label, batch passed to diarize, effective segmentation/embedding batch sizes)
    configs = [(f"{default[0]}/{default[1]} (backend default)", None, default)]
    for batch, why in ((profile_batch, " (worker profile)"), (16, ""), (32, "")):
        if all((batch, batch) != effective for _, _, effective in configs):
            configs.append((f"{batch}/{batch}{why}", batch, (batch, batch)))
    rows, chosen = [], None
    for label, batch, effective in configs:
        output, timing = timed(backend.diarize, samples, RATE, batch_size=batch)
        segments = output.segments
        rows.append(Row(f"pyannote batch {label}", str(backend.device), timing, speakers(segments)))
        if effective == (profile_batch, profile_batch):
            chosen = (segments, timing)
    return rows, chosen


def pyannote_model(arg: str | None, workdir: Path) -> tuple[str, str | None, str]:
    """(model, token, description); builds a local model (random embedding) when none is given."""
    from core.service.settings import Settings

    if arg:
        settings = Settings()
        token = settings.hf_token.get_secret_value() if settings.hf_token else None
        return arg, token, arg
    from benchmarks.pyannote_local import build_local_pipeline

    path = build_local_pipeline(workdir / "pyannote-random")
    return (
        str(path),
        None,
        "local model with a random embedding (benchmarks/pyannote_local.py): ONLY SPEED IS MEANINGFUL",
    )


# ------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    import torch

    from core.analysis import campplus, exported, music, speaker_embeddings, threads, vad
    from core.analysis.audio import ORIGINAL_RATE
    from core.contracts.video import Segment
    from core.service.settings import Settings

    settings = Settings()
    profile = activity_profile(settings)
    # each model call's threads, as the worker gives them (its cores over its slots)
    threads.use(
        threads.per_call(settings.max_concurrent_activities or profile.gpu_slots, settings.model_threads)
    )
    exported.use(settings.inference, settings.model_cache_dir, settings.cpu_bf16)
    with tempfile.TemporaryDirectory(prefix="speed-") as tmp:
        workdir = Path(tmp)
        sources = source_recordings(args.audio)
        test_file, used = build_test_audio(sources, args.minutes, workdir)
        minutes = sf.info(str(test_file)).duration / 60
        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
        print(
            f"speed: {minutes:.2f} min of test audio = {used} recording(s) from "
            f"{sources[0].parent} back to back, as a {SOURCE_RATE / 1000:g} kHz stereo WAV"
        )
        print(
            f"torch {torch.__version__}: {torch.get_num_threads()} intra-op / "
            f"{torch.get_num_interop_threads()} inter-op threads; CUDA: {cuda}; "
            f"worker class {profile.gpu_class}: embedding batch {profile.embedding_batch}, "
            f"segmentation batch {profile.segmentation_batch}; models in {exported.describe()}"
        )

        # warm-up: ffmpeg already ran while building the test audio; load every model
        samples = decode(test_file, workdir)
        clip = samples[: int(WARMUP_S * RATE)]
        vad.speech_probabilities(clip)
        music.detect_music(clip, RATE)
        speaker_embeddings.embed_segments(
            clip, [Segment(start=0.0, end=2.0, speaker="w")], profile.embedding_batch
        )

        samples, t_decode = timed(decode, test_file, workdir)
        _, t_vad = timed(vad.speech_probabilities, samples)
        backends = ["pretrained", "pyannote"] if args.backend == "both" else [args.backend]
        rows = [
            Row("decode/resample -> 16 kHz mono", "cpu", t_decode, "ffmpeg, 44.1 kHz stereo WAV in"),
            Row("speech activity (silero-vad)", "cpu", t_vad, "part of music"),
        ]
        diarized = []  # (backend label, segments, Timing, kept CAM++ frames or None) per backend
        for name in backends:
            if name == "pretrained":
                for step in args.step or [settings.diarization_step_s]:
                    diarize_rows, segments, t_diarize, frames = time_pretrained(
                        samples, clip, profile.segmentation_batch, step
                    )
                    diarized.append((f"pretrained, step {step:g} s", segments, t_diarize, frames))
                    rows += diarize_rows
                continue
            else:
                try:
                    model, token, described = pyannote_model(args.pyannote_model, workdir)
                    print(f"pyannote model: {described}")
                    diarize_rows, (segments, t_diarize) = time_pyannote(
                        model, token, samples, clip, profile.segmentation_batch
                    )
                except Exception as exc:  # a model that cannot load: say why, no traceback
                    print(f"cannot time the pyannote backend: {exc}", file=sys.stderr)
                    return 2
                diarized.append((f"pyannote, batch {profile.segmentation_batch}", segments, t_diarize, None))
            rows += diarize_rows

        # segment embeddings are timed on the first backend's turns (the default one's
        # when both run): pooled from the CAM++ frames it kept, else a pass per segment
        _, first_segments, _, kept = diarized[0]
        if kept is not None:
            _, t_embed = timed(
                speaker_embeddings.embed_from_frames, kept[0], kept[1], first_segments, len(samples)
            )
            embed_how = "pooled from the diarization's CAM++ frames"
        else:
            _, t_embed = timed(
                speaker_embeddings.embed_segments, samples, first_segments, batch_size=profile.embedding_batch
            )
            embed_how = f"a CAM++ pass per segment, batch {profile.embedding_batch}"
        regions, t_music = timed(music.detect_music, samples, RATE)
        original = decode(test_file, workdir, ORIGINAL_RATE)  # the download makes it beside the 16 kHz copy
        labeller = QualityLabeller(settings.dnsmos_block_s)
        labeller(samples[: int(WARMUP_S * RATE)], original, [Segment(start=0.0, end=5.0, speaker="w")], [])
        labels, t_labels = timed(labeller, samples, original, first_segments, regions)
        rows += [
            Row(
                "segment embeddings (CAM++)",
                str(campplus.device()),
                t_embed,
                f"{len(first_segments)} segments, {embed_how}",
            ),
            Row("music detection", "cpu", t_music, f"{len(regions)} regions, runs its own VAD"),
            Row(
                "quality labels",
                "cpu",
                t_labels,
                f"{len(labels)} segments; DNSMOS per speaker per {labeller.models.block_s:g} s block",
            ),
        ]
        rows += [
            Row(
                f"PIPELINE ({'+'.join(PIPELINE_PARTS)})",
                "",
                t_decode + t_diarize + t_embed + t_music + t_labels,
                f"diarization: {label}",
            )
            for label, _, t_diarize, _ in diarized
        ]

    print(f"models loaded and warmed up on a {WARMUP_S:g} s clip before timing: first load excluded\n")
    print(report(rows, minutes))
    print("cpu = process CPU over all threads + ffmpeg child CPU; wall = elapsed; both per audio minute")
    return 0


def report(rows: list[Row], minutes: float) -> str:
    w = max(len(r.stage) for r in rows)
    lines = [f"{'stage':<{w}}  {'device':<6} {'cpu s/min':>9} {'wall s/min':>10}  notes"]
    for r in rows:
        cpu, wall = r.timing.cpu / minutes, r.timing.wall / minutes
        lines.append(f"{r.stage:<{w}}  {r.device:<6} {cpu:>9.3f} {wall:>10.3f}  {r.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("pretrained", "pyannote", "both"), default="pretrained")
    parser.add_argument(
        "--step",
        type=float,
        action="append",
        help="segmentation step of the default backend, s (repeatable; default: settings)",
    )
    parser.add_argument("--minutes", type=float, default=2.0, help="length of the test audio (default 2)")
    parser.add_argument("--audio", type=Path, help="build the test audio from this recording instead")
    parser.add_argument("--pyannote-model", help="hub id or local directory (default: random weights)")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    if args.audio and not args.audio.is_file():
        parser.error(f"{args.audio} is not a file")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
