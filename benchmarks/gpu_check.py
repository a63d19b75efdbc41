"""The GPU path in one call: detection, every model stage on CUDA, agreement with CPU, a real OOM.

    python -m benchmarks.gpu_check --out DIR [--eval DIR] [--minutes 60] [--emulate-gib 16]
        [--dev-limit N] [--oom-batch N]

Why: the fleet is GPU workers (queues keyed by GPU class, batches sized to the card,
CUDA out-of-memory handled by halving), but a GPU machine is lent rarely, for minutes, to
whichever issue draws it. This check measures the whole GPU path in one run, so any of
them can; ``python -m benchmarks.gpu_bundle`` prepares what it needs on that machine
(benchmarks/README.md, "GPU ready check"). Without CUDA it runs the same code on CPU
(the test suite runs it small), so it cannot rot.

Parts, printed as they finish and written to DIR as ``gpu_check.json`` and ``gpu_check.txt``:

1. **detect**: the GPUs NVML reports, the class and batch profile the worker would choose
   (``workers/gpu.py``, ``core.contracts.gpu_profiles.worker_profile``), and the class a card with
   ``--emulate-gib`` of memory would get (16: a T4).
2. **stages**: a ``--minutes`` recording built from the eval set (``benchmarks.longform``:
   its annotated files in seeded layouts with music interludes) through every model
   stage as the activities run it, at the worker's batch sizes: wall s, CPU s and peak GPU
   memory per audio hour, and the recording's DER against its built reference.
3. **emulated card** (CUDA only): the GPU stages again at the emulated class's batch
   sizes, with ``torch.cuda.set_per_process_memory_fraction`` holding the process to
   ``--emulate-gib``: whether that class's profile fits its memory, and at what cost.
4. **agreement**: the eval set's files through segmentation, segment embeddings (on
   the reference's single-speaker stretches, so both sides embed the same spans) and
   diarization, here and in a child process that sees no GPU (the CPU path, at the CPU
   profile's batch sizes): segmentation agreement, embedding cosine, DER of each.
5. **oom**: diarization's chunk work over the recording at ``--oom-batch`` under the
   emulated memory limit, through ``core.analysis.gpu_memory`` (recognise, free, halve) until a
   batch fits: the batch sizes it went through. Without CUDA the OOM is injected
   (``PIPELINE_FAULT_OOM_ABOVE_BATCH``), and the report says so.

Eval folder: ``diarization/{audio,rttm,uem}`` and ``music/{audio,labels}``, as
``../shared/eval`` (the default) or the bundle's copy (16 kHz mono FLAC, read without ffmpeg).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # pyannote telemetry: no network

import numpy as np  # noqa: E402

from benchmarks.speed import QualityLabeller, cpu_seconds  # noqa: E402
from core.analysis.diarization import DiarizationOutput  # noqa: E402
from core.contracts.stages import Stage  # noqa: E402
from core.contracts.video import Segment  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL = REPO_ROOT.parent / "shared" / "eval"
RATE = 16_000
ORIGINAL_RATE = 48_000
WARMUP_S = 10.0
EMULATED_GIB = 16.0  # a T4's memory
OOM_BATCH = 2048  # more 10 s windows than any class's profile holds: must overflow 16 GB
INJECTED_OOM_ABOVE = 4  # without CUDA: batches above this "run out of memory"
MIB = 2**20
T = TypeVar("T")


# ----------------------------------------------------------------------- measuring


@dataclass
class Cost:
    wall_s: float
    cpu_s: float
    peak_gpu_mib: float | None  # torch's allocator high-water mark; None without CUDA


@dataclass
class Figure:
    """One stage's cost over ``audio_s`` of audio on ``device``."""

    stage: str
    device: str
    batch: int | None
    audio_s: float
    wall_s: float
    cpu_s: float
    peak_gpu_mib: float | None
    note: str = ""
    pipeline_stage: str | None = (
        None  # the whole stage (core.contracts.stages.Stage) it times: benchmarks.fleet reads it
    )

    @classmethod
    def of(
        cls,
        stage: str,
        device: str,
        batch: int | None,
        audio_s: float,
        cost: Cost,
        pipeline_stage: str | None = None,
    ) -> Figure:
        return cls(stage, device, batch, audio_s, **asdict(cost), pipeline_stage=pipeline_stage)

    def per_hour(self, seconds: float) -> float:
        return seconds * 3600.0 / self.audio_s


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def measured(fn: Callable[[], T]) -> tuple[T, Cost]:
    """fn's result and its cost: GPU work is finished before each clock is read, and the
    peak is this call's alone."""
    import torch

    cuda = _cuda()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    return result, Cost(wall, cpu, torch.cuda.max_memory_allocated() / MIB if cuda else None)


def say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------- 1. detect


def detect(emulate_gib: float) -> dict[str, Any]:
    """What the worker would see and choose on this machine, and for an emulated card."""
    import torch

    from core.contracts.gpu_profiles import worker_profile
    from core.service.settings import Settings
    from workers.gpu import GpuInfo, classify, detect_gpus, worker_class

    settings = Settings()
    gpus = detect_gpus()
    gpu_class = worker_class(settings.worker_gpu_class, gpus)
    emulated = classify(GpuInfo(0, f"emulated {emulate_gib:g} GiB", emulate_gib, (0, 0)))
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if _cuda() else None,
        "device_name": torch.cuda.get_device_name(0) if _cuda() else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "onnxruntime_providers": _onnx_providers(),
        "gpus": [asdict(g) for g in gpus],
        "gpu_class": gpu_class,
        "profile": worker_profile(
            gpu_class, settings.embedding_batch_size, settings.segmentation_batch_size
        ).model_dump(),
        "emulated_gib": emulate_gib,
        "emulated_class": emulated,
        "emulated_profile": worker_profile(emulated).model_dump(),
        "diarization_step_s": settings.diarization_step_s,
        "chunk_s": settings.chunk_s,
    }
    return found


def _onnx_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


# -------------------------------------------------------------------- 2. stages


@dataclass
class Recording:
    samples: np.ndarray
    reference: list[Segment]  # inside the recording
    scored: list[tuple[float, float]]
    summary: str


def build_recording(eval_dir: Path, minutes: float, seed: int, workdir: Path) -> Recording:
    """``minutes`` of the eval set laid out as long-form recordings are
    (``benchmarks.longform``), as many layouts as it takes, cut to length."""
    from benchmarks import longform
    from core.contracts.video import Segment

    sources = longform.load_sources(eval_dir / "diarization", None, workdir)
    if not sources:
        raise SystemExit(f"no annotated audio (audio/ with rttm/) in {eval_dir / 'diarization'}")
    clips = longform.load_interludes(eval_dir / "music", workdir)
    once = sum(len(s.samples) for s in sources) / RATE + len(sources) * (
        2 * np.mean(longform.SILENCE_S) + (np.mean(longform.MUSIC_S) if clips else 0.0)
    )
    repeats = max(1, math.ceil(minutes * 60 / once * 1.1))
    rng = np.random.default_rng([seed])
    built = longform.build("gpu-check", longform.shuffled_rounds(sources, repeats, rng), clips, rng)
    end = min(built.duration, minutes * 60)
    reference = [
        Segment(start=t.start, end=min(t.end, end), speaker=t.speaker)
        for t in built.reference
        if t.start < end
    ]
    scored = [(s, min(e, end)) for s, e in built.scored if s < end]
    return Recording(
        built.samples[: int(round(end * RATE))],
        reference,
        scored,
        f"{end / 60:.1f} min: {repeats} seeded layouts of {len(sources)} eval files, "
        f"{len(clips)} music clips for the interludes, {len({t.speaker for t in reference})} speakers",
    )


def write_original(samples: np.ndarray, path: Path) -> Path:
    """A 48 kHz copy for the labels stage, which reads the original beside the analysis copy
    (upsampled from 16 kHz: the cost is the stage's, the bandwidth label is not a real one)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    sf.write(str(path), np.clip(resample_poly(samples, 3, 1), -1, 1), ORIGINAL_RATE, subtype="PCM_16")
    return path


class Stages:
    """The model stages as the activities run them, at one profile's batch sizes."""

    def __init__(self, step_s: float, chunk_s: float) -> None:
        from core.analysis.diarization.pretrained import OperatingPoint, PretrainedDiarization

        self.backend = PretrainedDiarization(OperatingPoint(step_s))
        self.chunk_s = chunk_s
        self._labeller: QualityLabeller | None = None

    def labeller(self, block_s: float) -> QualityLabeller:
        """One DNSMOS session for the warm-up and every run, as a worker keeps one."""
        if self._labeller is None:
            self._labeller = QualityLabeller(block_s)
        return self._labeller

    def device(self) -> str:
        from core.analysis import campplus

        return str(campplus.device())

    def diarize(self, samples: np.ndarray, batch: int) -> DiarizationOutput:
        """activities/diarize.py's work: features chunk by chunk, then the global step."""
        duration = len(samples) / RATE
        chunks = [
            self.backend.extract(samples, RATE, i * self.chunk_s, (i + 1) * self.chunk_s, batch)
            for i in range(max(1, math.ceil(duration / self.chunk_s)))
        ]
        return self.backend.finish(chunks, duration)

    def gpu_figures(
        self, samples: np.ndarray, segmentation_batch: int, embedding_batch: int, prefix: str = ""
    ) -> tuple[list[Figure], list[Segment]]:
        """The stages that run on the GPU, each model alone, then the two GPU stages whole."""
        from core.analysis import campplus, speaker_embeddings

        audio_s, device = len(samples) / RATE, self.device()
        starts = self.backend.window_starts(len(samples))
        _, segmentation = measured(lambda: self.backend._segment(samples, starts, segmentation_batch))
        _, trunk = measured(lambda: campplus.frame_features(samples, 0, len(samples), segmentation_batch))
        output, diarize = measured(lambda: self.diarize(samples, segmentation_batch))
        segments = output.segments
        _, embed = measured(lambda: speaker_embeddings.embed_segments(samples, segments, embedding_batch))
        speakers = len({s.speaker for s in segments})
        notes = [
            f"{len(starts)} windows",
            "",
            f"{self.chunk_s:g} s chunks + clustering; {len(segments)} turns, {speakers} speakers",
            f"{len(segments)} segments",
        ]
        figures = [
            Figure.of(f"{prefix}segmentation-3.0", device, segmentation_batch, audio_s, segmentation),
            Figure.of(f"{prefix}CAM++ trunk over the audio", device, segmentation_batch, audio_s, trunk),
            Figure.of(f"{prefix}diarize stage", device, segmentation_batch, audio_s, diarize, Stage.DIARIZE),
            Figure.of(f"{prefix}embed stage (CAM++)", device, embedding_batch, audio_s, embed, Stage.EMBED),
        ]
        for figure, note in zip(figures, notes):
            figure.note = note
        return figures, segments

    def cpu_figures(
        self, samples: np.ndarray, original: Path, segments: list[Segment], block_s: float
    ) -> list[Figure]:
        """The stages with no CUDA path, which run beside the GPU on the same worker."""
        from core.analysis import music

        audio_s = len(samples) / RATE
        regions, music_cost = measured(lambda: music.detect_music(samples, RATE))
        labeller = self.labeller(block_s)
        _, labels_cost = measured(lambda: labeller(samples, original, segments, regions))
        figures = [
            Figure.of("music stage", "cpu", None, audio_s, music_cost, Stage.MUSIC),
            Figure.of(
                "labels stage (DNSMOS on onnxruntime)", "cpu", None, audio_s, labels_cost, Stage.LABELS
            ),
        ]
        figures[0].note = f"{len(regions)} regions"
        return figures

    def warm_up(self, samples: np.ndarray, original: Path, block_s: float) -> None:
        """Load every model and let CUDA pick its kernels on a short clip: first-load time
        is not a stage's cost."""
        from core.analysis import speaker_embeddings
        from core.contracts.video import Segment

        clip = samples[: int(WARMUP_S * RATE)]
        self.diarize(clip, 8)
        speaker_embeddings.embed_segments(clip, [Segment(start=0.0, end=2.0, speaker="w")], 8)
        self.cpu_figures(clip, original, [Segment(start=0.0, end=5.0, speaker="w")], block_s)


def recording_der(recording: Recording, segments: list[Segment]) -> float | None:
    from benchmarks.quality import der_detail, der_metric

    metric = der_metric()
    der_detail("gpu-check", recording.reference, segments, recording.scored, metric)
    return round(100.0 * abs(metric), 2) if recording.reference else None


# ----------------------------------------------------------------- 4. agreement


def agreement_outputs(
    eval_dir: Path, limit: int | None, out: Path, stages: Stages | None = None
) -> dict[str, Any]:
    """Segmentation, reference-stretch embeddings and diarization of each eval file on this
    process's device at its worker's batch sizes; arrays to ``out/agreement-<device>.npz``.
    ``stages``: the models this process has loaded already."""
    from benchmarks.eval_set import annotated_diarization
    from benchmarks.quality import der_detail, der_metric, single_speaker_stretches
    from core.analysis import speaker_embeddings
    from core.contracts.gpu_profiles import worker_profile
    from core.service.settings import Settings
    from workers.gpu import detect_gpus, worker_class

    settings = Settings()
    # NVML sees the GPU even where CUDA is hidden: the CPU child is a CPU worker
    gpu_class = worker_class(settings.worker_gpu_class, detect_gpus()) if _cuda() else "cpu"
    profile = worker_profile(gpu_class, settings.embedding_batch_size, settings.segmentation_batch_size)
    stages = stages or Stages(settings.diarization_step_s, settings.chunk_s)
    metric = der_metric()
    arrays: dict[str, np.ndarray] = {}
    files = {}
    for f in annotated_diarization(eval_dir / "diarization", limit, out):
        starts = stages.backend.window_starts(len(f.samples))
        arrays[f"seg/{f.uri}"] = stages.backend._segment(f.samples, starts, profile.segmentation_batch)[0]
        stretches = single_speaker_stretches(f.reference, len(f.samples) / RATE)
        arrays[f"emb/{f.uri}"] = speaker_embeddings.embed_segments(
            f.samples, stretches, profile.embedding_batch
        )
        output = stages.diarize(f.samples, profile.segmentation_batch)
        detail = der_detail(f.uri, f.reference, output.segments, f.scored, metric)
        errors = detail["missed detection"] + detail["false alarm"] + detail["confusion"]
        files[f.uri] = {
            "der": round(100.0 * errors / detail["total"], 2) if detail["total"] else None,
            "speakers": len({s.speaker for s in output.segments}),
        }
    device = stages.device()
    np.savez(out / f"agreement-{device.split(':')[0]}.npz", **arrays)  # type: ignore[arg-type]
    return {
        "device": device,
        "gpu_class": gpu_class,
        "batches": [profile.segmentation_batch, profile.embedding_batch],
        "files": files,
        "pooled_der": round(100.0 * abs(metric), 2) if files else None,
    }


def cpu_agreement_outputs(eval_dir: Path, limit: int | None, out: Path) -> dict[str, Any]:
    """The same in a child process that sees no GPU: the CPU path, as a CPU worker runs it."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--agreement-only", "--out", str(out)]
    command += ["--eval", str(eval_dir)] + (["--dev-limit", str(limit)] if limit else [])
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the CPU path failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads((out / "agreement.json").read_text()))


def compare(here: dict[str, Any], cpu: dict[str, Any], folder: Path) -> dict[str, Any]:
    """How far this device's outputs are from the CPU path's."""
    mine = np.load(folder / "here" / f"agreement-{here['device'].split(':')[0]}.npz")
    theirs = np.load(folder / "cpu" / "agreement-cpu.npz")
    same_frames = total_frames = 0
    cosines = []
    for name in mine.files:
        a, b = mine[name], theirs[name]
        if name.startswith("seg/"):
            same_frames += int((a == b).all(axis=-1).sum())
            total_frames += int(np.prod(a.shape[:-1]))
        elif len(a):
            cosines.append(np.sum(a * b, axis=1))
    cos = np.concatenate(cosines) if cosines else np.zeros(0)
    return {
        "devices": [here["device"], cpu["device"]],
        "batches": {"here": here["batches"], "cpu": cpu["batches"]},
        "segmentation_frame_agreement": round(same_frames / total_frames, 5) if total_frames else None,
        "segmentation_frames": total_frames,
        "embedding_cosine_mean": round(float(cos.mean()), 5) if len(cos) else None,
        "embedding_cosine_min": round(float(cos.min()), 5) if len(cos) else None,
        "embeddings": len(cos),
        "der_here": here["pooled_der"],
        "der_cpu": cpu["pooled_der"],
        "files": {uri: {"here": f, "cpu": cpu["files"].get(uri)} for uri, f in here["files"].items()},
    }


# ----------------------------------------------------------------------- 5. oom


def oom_trace(stages: Stages, samples: np.ndarray, start_batch: int) -> dict[str, Any]:
    """Diarization's chunk work over the whole recording as one chunk, from ``start_batch``
    down, through the halving policy the chunked stages use, until a batch fits."""
    import torch

    from core.analysis import gpu_memory

    injected = not _cuda()
    if injected:
        os.environ["PIPELINE_FAULT_OOM_ABOVE_BATCH"] = str(INJECTED_OOM_ABOVE)
    attempts: list[dict[str, Any]] = []
    batch = start_batch
    end = len(samples) / RATE + 10.0
    try:
        while batch >= 1:
            attempt: dict[str, Any] = {"batch": batch}
            attempts.append(attempt)
            try:
                _, cost = measured(partial(stages.backend.extract, samples, RATE, 0.0, end, batch))
                attempt.update(
                    outcome="fits", wall_s=round(cost.wall_s, 2), peak_gpu_mib=_round(cost.peak_gpu_mib)
                )
                break
            except Exception as exc:
                if not gpu_memory.is_cuda_oom(exc):
                    raise
                attempt.update(outcome="out of memory", error=str(exc).splitlines()[0][:160])
                gpu_memory.free_gpu_memory()
                if _cuda():
                    attempt["allocated_after_free_mib"] = _round(torch.cuda.memory_allocated() / MIB)
                batch = gpu_memory.halved(batch)
    finally:
        if injected:
            del os.environ["PIPELINE_FAULT_OOM_ABOVE_BATCH"]
    return {
        "source": f"injected: no CUDA (PIPELINE_FAULT_OOM_ABOVE_BATCH={INJECTED_OOM_ABOVE})"
        if injected
        else "real: torch.cuda.OutOfMemoryError under the emulated memory limit",
        "windows": int(len(stages.backend.window_starts(len(samples)))),
        "batches": [a["batch"] for a in attempts],
        "fits_at": batch if attempts and attempts[-1]["outcome"] == "fits" else None,
        "attempts": attempts,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --------------------------------------------------------------------- report


def figure_rows(figures: list[Figure]) -> list[str]:
    width = max(len(f.stage) for f in figures)
    header = f"{'device':<6} {'batch':>5} {'wall s/h':>9} {'CPU s/h':>9} {'peak MiB':>9}  notes"
    lines = [f"  {'stage':<{width}}  {header}"]
    for f in figures:
        peak = "-" if f.peak_gpu_mib is None else f"{f.peak_gpu_mib:.0f}"
        batch = "-" if f.batch is None else str(f.batch)
        lines.append(
            f"  {f.stage:<{width}}  {f.device:<6} {batch:>5} {f.per_hour(f.wall_s):>9.1f} "
            f"{f.per_hour(f.cpu_s):>9.1f} {peak:>9}  {f.note}"
        )
    return lines


def text_report(result: dict[str, Any]) -> list[str]:
    d = result["detect"]
    gpus = ", ".join(f"{g['name']} {g['memory_gib']} GiB" for g in d["gpus"]) or "none (NVML: no GPU)"
    lines = [
        f"gpu_check: python {d['python']}, torch {d['torch']}, CUDA {d['cuda'] or 'not available'}, "
        f"{d['cpu_count']} CPUs; onnxruntime providers {', '.join(d['onnxruntime_providers'])}",
        f"detect: {gpus} -> class {d['gpu_class']}: {_profile(d['profile'])}",
        f"        emulated {d['emulated_gib']:g} GiB -> class {d['emulated_class']}: "
        f"{_profile(d['emulated_profile'])}",
        f"stages: {result['recording']} (step {d['diarization_step_s']:g} s, per audio hour)",
        *figure_rows([Figure(**f) for f in result["stages"]]),
        f"  DER of the recording against its built reference: {result['recording_der']} %",
    ]
    emulated = result.get("emulated")
    if emulated and emulated.get("figures"):
        lines += [f"emulated {d['emulated_class']} ({d['emulated_gib']:g} GiB limit):"]
        lines += figure_rows([Figure(**f) for f in emulated["figures"]])
    elif emulated:
        lines.append(f"emulated {d['emulated_class']}: {emulated['note']}")
    a = result["agreement"]
    lines += [
        f"agreement {a['devices'][0]} vs {a['devices'][1]} ({len(a['files'])} eval files, batches "
        f"{a['batches']['here']} vs {a['batches']['cpu']}): segmentation frames equal "
        f"{a['segmentation_frame_agreement']} of {a['segmentation_frames']}; embedding cosine mean "
        f"{a['embedding_cosine_mean']} min {a['embedding_cosine_min']} ({a['embeddings']}); "
        f"DER {a['der_here']} % vs {a['der_cpu']} %",
    ]
    o = result["oom"]
    lines += [
        f"oom ({o['source']}; {o['windows']} windows): batches {' -> '.join(map(str, o['batches']))}, "
        f"fits at {o['fits_at']}",
        f"done in {result['seconds']:.0f} s",
    ]
    return lines


def _profile(p: dict[str, Any]) -> str:
    return (
        f"segmentation batch {p['segmentation_batch']}, embedding batch {p['embedding_batch']}, "
        f"{p['gpu_slots']} slot(s), up to {p['max_audio_h']:g} h of audio"
    )


# ----------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from core.service.settings import Settings

    began = time.perf_counter()
    result: dict[str, Any] = {"detect": detect(args.emulate_gib)}
    d = result["detect"]
    say(text_report_line_detect(d))
    settings = Settings()
    stages = Stages(settings.diarization_step_s, settings.chunk_s)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        workdir = Path(tmp)
        recording = build_recording(args.eval, args.minutes, args.seed, workdir)
        result["recording"] = recording.summary
        say(f"stages: {recording.summary}")
        original = write_original(recording.samples, workdir / "original.wav")
        stages.warm_up(recording.samples, original, settings.dnsmos_block_s)
        profile = d["profile"]
        figures, segments = stages.gpu_figures(
            recording.samples, profile["segmentation_batch"], profile["embedding_batch"]
        )
        figures += stages.cpu_figures(recording.samples, original, segments, settings.dnsmos_block_s)
        result["stages"] = [asdict(f) for f in figures]
        result["recording_der"] = recording_der(recording, segments)
        for line in figure_rows(figures):
            say(line)

        agreement_dir = workdir / "agreement"
        (agreement_dir / "here").mkdir(parents=True)
        (agreement_dir / "cpu").mkdir()
        here = agreement_outputs(args.eval, args.dev_limit, agreement_dir / "here", stages)
        cpu = cpu_agreement_outputs(args.eval, args.dev_limit, agreement_dir / "cpu")
        result["agreement"] = compare(here, cpu, agreement_dir)
        say(f"agreement: {json.dumps({k: v for k, v in result['agreement'].items() if k != 'files'})}")

        if _cuda():
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, args.emulate_gib * 2**30 / total))
            result["emulated"] = emulated_card(stages, recording.samples, d["emulated_profile"])
        else:
            result["emulated"] = {"note": "no CUDA: a memory limit cannot be emulated", "figures": []}
        result["oom"] = oom_trace(stages, recording.samples, args.oom_batch)
        if _cuda():
            torch.cuda.set_per_process_memory_fraction(1.0)
    result["seconds"] = round(time.perf_counter() - began, 1)
    return result


def text_report_line_detect(d: dict[str, Any]) -> str:
    return f"detect: class {d['gpu_class']} ({d['device_name'] or 'no CUDA'}), emulated {d['emulated_class']}"


def emulated_card(stages: Stages, samples: np.ndarray, profile: dict[str, Any]) -> dict[str, Any]:
    """The GPU stages at the emulated class's batch sizes under its memory limit; an OOM
    there is a finding (that class's profile does not fit its card), not a crash."""
    from core.analysis import gpu_memory

    try:
        figures, _ = stages.gpu_figures(
            samples, profile["segmentation_batch"], profile["embedding_batch"], prefix="emulated: "
        )
    except Exception as exc:
        if not gpu_memory.is_cuda_oom(exc):
            raise
        gpu_memory.free_gpu_memory()
        return {"note": f"the profile's batches do not fit: {str(exc).splitlines()[0][:200]}", "figures": []}
    for line in figure_rows(figures):
        say(line)
    return {"note": "", "figures": [asdict(f) for f in figures]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    arg = parser.add_argument
    arg("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.txt")
    arg("--eval", type=Path, default=DEFAULT_EVAL, help=f"eval folder (default {DEFAULT_EVAL})")
    arg("--minutes", type=float, default=60.0, help="length of the stage recording (default 60)")
    arg("--emulate-gib", type=float, default=EMULATED_GIB, help="emulated card memory (16: a T4)")
    parser.add_argument("--dev-limit", type=int, help="only the first N eval files in the agreement part")
    parser.add_argument("--oom-batch", type=int, default=OOM_BATCH, help="first batch of the OOM part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agreement-only", action="store_true", help=argparse.SUPPRESS)  # the CPU child
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.oom_batch < 1:
        parser.error("--minutes and --oom-batch must be positive")
    if not (args.eval / "diarization").is_dir():
        parser.error(f"{args.eval} has no diarization/ folder")
    args.out.mkdir(parents=True, exist_ok=True)
    from core.analysis import exported

    # the PyTorch models on both sides: the CUDA path and its CPU twin (the test suite holds
    # the onnxruntime path of CPU workers to the latter; the bundle carries no exporter)
    exported.use("torch")
    if args.agreement_only:
        found = agreement_outputs(args.eval, args.dev_limit, args.out)
        (args.out / "agreement.json").write_text(json.dumps(found))
        return 0
    result = run(args)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    report = text_report(result)
    (args.out / "gpu_check.txt").write_text("\n".join(report) + "\n")
    say("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
