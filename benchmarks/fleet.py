"""Simulate a fleet of spot GPUs running the pipeline; project time and cost for the job.

    python -m benchmarks.fleet --gpus 150 --videos 20000 [--gpu-class t4]
        [--cpu-figures | --gpu-check gpu_check.json [--cuda-scale F]]
        [--window 2000] [--download-slots 128] [--download-rate R] [--commit-slots 256]
        [--preempt-per-gpu-hour 0.05] [--price 0.53] [--seed 1]
    python -m benchmarks.fleet --validate [--videos 40 --gpus 2 ...]   # check the model on Temporal

A seeded discrete-event simulation (heapq, no Temporal) of the pipeline's queueing
structure, side by side with the design it replaces:

- pipelined (this project): a batch window of ``--window`` videos in flight; downloads
  on the CPU queue (``--download-slots`` fleet-wide, by default what deploy/k8s's CPU
  workers give at their replica ceiling: 16 pods x PIPELINE_DOWNLOAD_SLOTS 8 = 128; at
  most ``--download-rate`` starts per second, PIPELINE_DOWNLOAD_RATE_PER_S); diarize
  and music in parallel on the GPU queue (``--gpus`` x the class's ``gpu_slots``), then
  embed and labels in parallel; commits as local activities of the workflow worker (``--commit-slots``, by
  default 16 pods x 16 light slots). Queues are FIFO, as Temporal's task queues
  roughly are.
- serial: each GPU slot is a worker that downloads, runs the four model stages and
  commits in turn; its GPU idles while it downloads and commits.

Videos: ``--videos`` audio durations drawn from a lognormal (sigma ``--sigma``) capped to
[``--min-min``, ``--max-h``] and scaled so the capped mean is the real job's mean
(282,702 audio h / 340,424 videos = 49.8 min). Each stage's duration is its overhead
plus seconds per audio hour times the audio hours, times a uniform +-``--jitter``.

ASSUMED figures (replace with measured ones): GPU stage costs are seconds per audio hour
on a T4 (pyannote-class models; ``CLASS_SPEED`` scales them to other classes); they
stand in until ``benchmarks.gpu_check`` is run on CUDA, and every one has a flag.
``--gpu-check FILE`` takes them from that check's result instead (its emulated T4's
figures, CUDA stages times ``--cuda-scale``, the stated speed ratio of the card it ran
on to the simulated class).
``--cpu-figures`` uses the default (pretrained) backend's measured CPU costs instead
(``fleet_model.CPU_STAGE_S_PER_H``: one slot of a 2-core, 2-slot machine; ``--gpus`` then
counts such machines and ``--gpu-class cpu`` gives their slots). Download: yt-dlp
start-up and extraction ~30 s, then ~70 s per audio hour (a ~128 kbit/s audio stream,
58 MB/h, at ~1 MB/s, plus ffmpeg to the 48 kHz and 16 kHz WAVs). Upload: 5 s plus 15 s
per audio hour (the 48 kHz WAV, ~350 MB/h, to R2/S3 at ~25-50 MB/s).

Spot interruptions (``--preempt-per-gpu-hour``): each GPU machine is evicted at that
Poisson rate per hour it is up; its in-flight model stages resume elsewhere after
``--handover-s`` (1 s retry after a graceful shutdown), keeping every finished chunk of
``--chunk-s`` seconds of audio (at most one chunk of work is lost), and a replacement
machine joins after ``--replace-s``. The serial design is simulated without evictions,
which flatters it.

Printed per design: GPU-slot busy fraction over the whole run and once warm (the
middle 90 % of the makespan), videos/h and audio hours/h, and the projection for the
real job (340,424 videos, 282,702 audio h): wall days at the warm rate plus this run's
fill-and-drain time, and the GPU bill, counting every GPU the whole wall time (spot GPUs
are paid while up, busy or not) at ``--price`` (default Settings().gpu_prices).

``--validate`` runs a small batch of the same structure on the real embedded Temporal
stack (the real VideoWorkflow; stand-in activities under the real names that sleep their
simulated duration times a time scale), measures the GPU-slot busy fraction from the
activities' start and end times, and prints it next to the simulation's prediction.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from benchmarks.fleet_model import (
    CLASS_SPEED,
    CPU_STAGE_S_PER_H,
    GPU_STAGES,
    T4_STAGE_S_PER_H,
    Params,
    Video,
    deployed_cpu_slots,
    describe,
    draw_videos,
    report,
    simulate_pipelined,
    simulate_serial,
)
from benchmarks.fleet_validate import run_validation
from core.contracts import gpu_profiles
from core.service.settings import Settings


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpus", type=int, help="GPU machines (default 150; 2 with --validate)")
    parser.add_argument("--videos", type=int, help="videos simulated (default 20000; 40 with --validate)")
    parser.add_argument("--gpu-class", default="t4", choices=sorted(gpu_profiles.PROFILES))
    parser.add_argument("--window", type=int, help="videos in flight (default 2000; 8 with --validate)")
    parser.add_argument(
        "--download-slots",
        type=int,
        help="fleet-wide download slots (default: deploy/k8s CPU workers at maxReplicaCount x "
        "PIPELINE_DOWNLOAD_SLOTS; 2 with --validate)",
    )
    parser.add_argument(
        "--download-rate",
        type=float,
        default=Settings().download_rate_per_s,
        help="fleet-wide download starts/s (default PIPELINE_DOWNLOAD_RATE_PER_S: unlimited)",
    )
    parser.add_argument(
        "--commit-slots",
        type=int,
        help="fleet-wide commit slots (default: the same pods x their light-activity slots; "
        "2 with --validate)",
    )
    parser.add_argument(
        "--cpu-figures", action="store_true", help="the pretrained backend's measured CPU costs"
    )
    parser.add_argument(
        "--gpu-check", type=Path, help="stage costs from a benchmarks.gpu_check result (gpu_check.json)"
    )
    parser.add_argument(
        "--cuda-scale",
        type=float,
        default=1.0,
        help="with --gpu-check: multiply its CUDA stages by this (measured card's speed / simulated class's)",
    )
    parser.add_argument("--diarize-s-per-h", type=float)
    parser.add_argument("--music-s-per-h", type=float)
    parser.add_argument("--embed-s-per-h", type=float)
    parser.add_argument("--labels-s-per-h", type=float)
    parser.add_argument("--download-overhead-s", type=float, default=30.0)
    parser.add_argument("--download-s-per-h", type=float, default=70.0)
    parser.add_argument("--commit-overhead-s", type=float, default=5.0)
    parser.add_argument("--commit-s-per-h", type=float, default=15.0)
    parser.add_argument("--jitter", type=float, default=0.2)
    parser.add_argument("--sigma", type=float, default=0.7, help="lognormal sigma of audio durations")
    parser.add_argument("--min-min", type=float, default=10.0, help="shortest audio, minutes")
    parser.add_argument(
        "--max-h", type=float, default=6.0, help="longest audio, hours (PIPELINE_MAX_DURATION_S)"
    )
    parser.add_argument("--preempt-per-gpu-hour", type=float, default=0.0)
    parser.add_argument("--handover-s", type=float, default=1.0)
    parser.add_argument("--replace-s", type=float, default=180.0)
    parser.add_argument("--chunk-s", type=float, default=Settings().chunk_s)
    parser.add_argument("--price", type=float, help="$ per GPU-hour (default Settings().gpu_prices[class])")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--validate", action="store_true", help="check the model on the real Temporal stack")
    parser.add_argument("--validate-seconds", type=float, default=25.0, help="target wall time of --validate")
    return parser


def _stage_costs(a: argparse.Namespace) -> tuple[dict[str, float], str]:
    """GPU seconds per audio hour of each model stage, and where the figures come from."""
    if a.gpu_check:
        base, figures = gpu_check_costs(a.gpu_check, a.cuda_scale)
    elif a.cpu_figures:
        base, figures = dict(CPU_STAGE_S_PER_H), "MEASURED pretrained backend on 2 CPU cores"
    else:
        speed = CLASS_SPEED.get(a.gpu_class, 1.0)
        base = {k: v / speed for k, v in T4_STAGE_S_PER_H.items()}
        figures = f"ASSUMED for {a.gpu_class}, to be replaced by benchmarks.gpu_check on CUDA"
    for stage in GPU_STAGES:
        override = getattr(a, f"{stage}_s_per_h")
        if override is not None:
            base[stage] = override
    return base, figures


def gpu_check_costs(path: Path, cuda_scale: float) -> tuple[dict[str, float], str]:
    """Each GPU-queue stage's wall seconds per audio hour from a ``benchmarks.gpu_check``
    result: its emulated card's figures (that class's batches under its memory limit)
    where it has them, else its own. Stages that ran on CUDA are multiplied by
    ``cuda_scale`` (the measured card's speed over the simulated class's: a stated
    factor), stages on the CPU are taken as measured."""
    import json

    result = json.loads(path.read_text())
    emulated = (result.get("emulated") or {}).get("figures") or []
    rows = {f["pipeline_stage"]: f for f in emulated or result["stages"] if f.get("pipeline_stage")}
    missing = [stage for stage in GPU_STAGES if stage not in rows]
    if missing:
        raise SystemExit(f"{path} has no figure for {', '.join(missing)}")
    costs = {
        stage: rows[stage]["wall_s"]
        * 3600.0
        / rows[stage]["audio_s"]
        * (cuda_scale if rows[stage]["device"].startswith("cuda") else 1.0)
        for stage in GPU_STAGES
    }
    detect = result["detect"]
    card = detect["device_name"] or "CPU"
    batches = (
        f"{detect['emulated_class']} batches, {detect['emulated_gib']:g} GiB limit"
        if emulated
        else "own batches"
    )
    return costs, f"MEASURED by benchmarks.gpu_check on {card} ({batches}), CUDA stages x{cuda_scale:g}"


def _params(a: argparse.Namespace, stage_s_per_h: dict[str, float]) -> Params:
    """The fleet the flags describe; unset sizes default small with --validate."""
    small = a.validate
    deployed_downloads, deployed_commits = deployed_cpu_slots()
    return Params(
        gpus=a.gpus or (2 if small else 150),
        gpu_class=a.gpu_class,
        window=a.window or (8 if small else 2000),
        download_slots=a.download_slots or (2 if small else deployed_downloads),
        download_rate=a.download_rate,
        commit_slots=a.commit_slots or (2 if small else deployed_commits),
        stage_s_per_h=stage_s_per_h,
        download_overhead_s=a.download_overhead_s,
        download_s_per_h=a.download_s_per_h,
        commit_overhead_s=a.commit_overhead_s,
        commit_s_per_h=a.commit_s_per_h,
        jitter=a.jitter,
        preempt_per_gpu_h=a.preempt_per_gpu_hour,
        handover_s=a.handover_s,
        replace_s=a.replace_s,
        chunk_s=a.chunk_s,
    )


def _run_simulation(p: Params, videos: list[Video], price: float, seed: int) -> None:
    began = time.perf_counter()
    results = [simulate_pipelined(p, videos, seed), simulate_serial(p, videos)]
    for line in report(p, results, price):
        print(line)
    print(f"simulated in {time.perf_counter() - began:.1f} s")


def main() -> None:
    a = _build_parser().parse_args()
    base, figures = _stage_costs(a)
    p = _params(a, base)
    price = a.price if a.price is not None else Settings().gpu_prices.get(a.gpu_class, 0.0)
    lo_h, hi_h = a.min_min / 60, a.max_h
    videos = draw_videos(
        a.videos or (40 if a.validate else 20000), p, random.Random(a.seed), a.sigma, lo_h, hi_h
    )
    for line in describe(p, videos, lo_h, hi_h, figures):
        print(line)
    if a.validate:
        run_validation(p, videos, a.validate_seconds)
    _run_simulation(p, videos, price, a.seed)


if __name__ == "__main__":
    main()
