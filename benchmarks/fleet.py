"""Simulate a fleet of spot GPUs running the pipeline; project time and cost for the job.

    python -m benchmarks.fleet --gpus 150 --videos 20000 [--gpu-class t4]
        [--cpu-figures | --gpu-check gpu_check.json [--cuda-scale F]]
        [--window 2000] [--download-slots 128] [--download-rate R] [--upload-slots 256]
        [--preempt-per-gpu-hour 0.05] [--price 0.53] [--seed 1]
    python -m benchmarks.fleet --validate [--videos 40 --gpus 2 ...]   # check the model on Temporal

A seeded discrete-event simulation (heapq, no Temporal) of the pipeline's queueing
structure, side by side with the design it replaces:

- pipelined (this project): a batch window of ``--window`` videos in flight; downloads
  on the CPU queue (``--download-slots`` fleet-wide, by default what deploy/k8s's CPU
  workers give at their replica ceiling: 16 pods x PIPELINE_DOWNLOAD_SLOTS 8 = 128; at
  most ``--download-rate`` starts per second, PIPELINE_DOWNLOAD_RATE_PER_S); diarize
  and music in parallel on the GPU queue (``--gpus`` x the class's ``gpu_slots``), then
  embed; uploads as local activities of the workflow worker (``--upload-slots``, by
  default 16 pods x 16 light slots). Queues are FIFO, as Temporal's task queues
  roughly are.
- serial: each GPU slot is a worker that downloads, runs the three model stages and
  uploads in turn; its GPU idles while it downloads and uploads.

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
``--cpu-figures`` uses the default (pretrained) backend's measured CPU costs instead (2
cores, step 2.5 s: 3.83, 0.27 and 1.95 CPU s per audio minute for diarize, music, embed). Download: yt-dlp
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
import asyncio
import heapq
import math
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.stand_ins import stand_in_activities
from core.contracts import gpu_profiles, queues
from core.contracts.stages import Stage
from core.service.settings import Settings

CPU_WORKER_MANIFEST = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "base" / "worker-cpu.yaml"


def deployed_cpu_slots() -> tuple[int, int]:
    """(download, upload) slots of the CPU workers at the deployment's replica ceiling:
    the fleet the simulation gets unless told otherwise, so raising maxReplicaCount or
    PIPELINE_DOWNLOAD_SLOTS shows up here."""
    found = re.search(r"^\s*maxReplicaCount:\s*(\d+)", CPU_WORKER_MANIFEST.read_text(), re.MULTILINE)
    if not found:
        raise SystemExit(f"no maxReplicaCount in {CPU_WORKER_MANIFEST}")
    replicas = int(found.group(1))
    return replicas * Settings().download_slots, replicas * queues.CPU_LIGHT_SLOTS


JOB_VIDEOS = 340_424
JOB_AUDIO_H = 282_702.0
JOB_MEAN_H = JOB_AUDIO_H / JOB_VIDEOS  # 0.830 h = 49.8 min

# ASSUMED seconds of GPU time per audio hour on a T4, per stage, until benchmarks.speed
# measures them on CUDA (pyannote-class segmentation + clustering, WeSpeaker-class
# embeddings, a small music classifier).
T4_STAGE_S_PER_H = {Stage.DIARIZE: 120.0, Stage.MUSIC: 30.0, Stage.EMBED: 60.0}
# ASSUMED speed of one slot of each class relative to a T4 (>1: faster).
CLASS_SPEED = {"cpu": 1.0, "t4": 1.0, "l4": 1.6, "a10": 1.8, "a100-40": 2.5, "a100-80": 2.5, "h100": 4.0}
# MEASURED: the pretrained backend on 2 CPU cores (benchmarks.speed --step 2.5), CPU s
# per audio minute x 60 = s per audio hour.
CPU_STAGE_S_PER_H = {Stage.DIARIZE: 3.83 * 60, Stage.MUSIC: 0.27 * 60, Stage.EMBED: 1.95 * 60}
GPU_STAGES = (Stage.DIARIZE, Stage.MUSIC, Stage.EMBED)


@dataclass
class Params:
    """One simulated fleet; the defaults of the sizes live in main() (--help)."""

    gpus: int
    gpu_class: str
    window: int
    download_slots: int
    download_rate: float | None  # starts per second fleet-wide; None: unlimited
    upload_slots: int
    stage_s_per_h: dict[str, float] = field(default_factory=dict)
    download_overhead_s: float = 30.0
    download_s_per_h: float = 70.0
    upload_overhead_s: float = 5.0
    upload_s_per_h: float = 15.0
    jitter: float = 0.2
    preempt_per_gpu_h: float = 0.0
    handover_s: float = 1.0
    replace_s: float = 180.0
    chunk_s: float = 120.0

    @property
    def slots_per_gpu(self) -> int:
        return gpu_profiles.profile_for(self.gpu_class).gpu_slots

    @property
    def slots(self) -> int:
        return self.gpus * self.slots_per_gpu


@dataclass
class Video:
    vid: int
    audio_h: float
    s: dict[str, float]  # seconds of each stage: download, diarize, music, embed, upload


def calibrate_mu(mean_h: float, sigma: float, lo_h: float, hi_h: float, z: list[float]) -> float:
    """mu of the lognormal whose samples (from these normal draws), capped, average mean_h."""

    def capped_mean(mu: float) -> float:
        return sum(min(max(math.exp(mu + sigma * x), lo_h), hi_h) for x in z) / len(z)

    lo, hi = math.log(lo_h) - 5, math.log(hi_h) + 5
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if capped_mean(mid) < mean_h else (lo, mid)
    return (lo + hi) / 2


def draw_videos(n: int, p: Params, rng: random.Random, sigma: float, lo_h: float, hi_h: float) -> list[Video]:
    z = [rng.gauss(0, 1) for _ in range(n)]
    mu = calibrate_mu(JOB_MEAN_H, sigma, lo_h, hi_h, z)

    def jit() -> float:
        return rng.uniform(1 - p.jitter, 1 + p.jitter)

    videos = []
    for i, x in enumerate(z):
        h = min(max(math.exp(mu + sigma * x), lo_h), hi_h)
        s = {
            Stage.DOWNLOAD: (p.download_overhead_s + p.download_s_per_h * h) * jit(),
            Stage.COMMIT: (p.upload_overhead_s + p.upload_s_per_h * h) * jit(),
        }
        for stage in GPU_STAGES:
            s[stage] = p.stage_s_per_h[stage] * h * jit()
        videos.append(Video(i, h, s))
    return videos


@dataclass
class Result:
    design: str
    makespan_s: float
    busy: float
    busy_warm: float
    videos: int
    audio_h: float
    lost_gpu_s: float = 0.0
    evictions: int = 0
    warm_audio_h_per_h: float = 0.0

    @property
    def videos_per_h(self) -> float:
        return self.videos / self.makespan_s * 3600

    @property
    def audio_h_per_h(self) -> float:
        return self.audio_h / self.makespan_s * 3600


def busy_fractions(intervals: list[tuple[float, float]], slots: int, end: float) -> tuple[float, float]:
    """(busy over [0, end], busy over the middle 90 % of it) of ``slots`` slots."""
    a, b = 0.05 * end, 0.95 * end
    total = sum(e - s for s, e in intervals)
    warm = sum(max(0.0, min(e, b) - max(s, a)) for s, e in intervals)
    return total / (slots * end), warm / (slots * (b - a))


def warm_rate(done: list[tuple[float, float]], end: float) -> float:
    """Audio hours per hour completed in the middle 90 % of the run."""
    a, b = 0.05 * end, 0.95 * end
    return sum(h for t, h in done if a <= t <= b) / (b - a) * 3600


class _Task:
    __slots__ = ("kept", "stage", "video")

    def __init__(self, video: Video, stage: str):
        self.video, self.stage, self.kept = video, stage, 0.0

    @property
    def work(self) -> float:
        return self.video.s[self.stage]


class _PipelinedRun:
    """The state of one pipelined simulation, with one handler per event kind. A handler
    returns False for an event that is to be dropped: the queues are then not pumped."""

    def __init__(self, p: Params, videos: list[Video], seed: int):
        self.p, self.videos = p, videos
        self.rng = random.Random(seed)
        self.spg = p.slots_per_gpu
        self.heap: list = []
        self.seq = 0
        self.next_video = 0
        self.in_flight = 0
        self.dl_queue: deque[Video] = deque()
        self.dl_free = p.download_slots
        self.dl_next_allowed = 0.0
        self.dl_wakeup_pending = False
        self.gpu_queue: deque[_Task] = deque()
        self.free_slots = list(range(p.slots - 1, -1, -1))
        self.running: dict[int, tuple[_Task, float, int]] = {}  # slot -> (task, started, version)
        self.version = [0] * p.slots
        self.machine_up = [True] * p.gpus
        self.up_queue: deque[Video] = deque()
        self.up_free = p.upload_slots
        self.joins: dict[int, int] = {}
        self.intervals: list[tuple[float, float]] = []
        self.done: list[tuple[float, float]] = []
        self.lost = 0.0
        self.evictions = 0
        self.rate_per_s = p.preempt_per_gpu_h / 3600
        self.handlers = {
            "dl_wakeup": self._on_dl_wakeup,
            "dl_done": self._on_dl_done,
            "gpu_done": self._on_gpu_done,
            "up_done": self._on_up_done,
            "requeue": self._on_requeue,
            "evict": self._on_evict,
            "machine_up": self._on_machine_up,
        }

    def push(self, t: float, kind: str, data=None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, data))

    def finished(self) -> bool:
        return self.next_video >= len(self.videos) and self.in_flight == 0

    # --- starting work from the queues ---
    def pump(self, now: float) -> None:
        self._admit()
        self._start_downloads(now)
        self._start_gpu_tasks(now)
        self._start_uploads(now)

    def _admit(self) -> None:
        """Fill the batch window from the videos not yet started."""
        while self.in_flight < self.p.window and self.next_video < len(self.videos):
            self.dl_queue.append(self.videos[self.next_video])
            self.next_video += 1
            self.in_flight += 1

    def _start_downloads(self, now: float) -> None:
        rate = self.p.download_rate
        while self.dl_queue and self.dl_free > 0:
            if rate and now < self.dl_next_allowed - 1e-9:
                if not self.dl_wakeup_pending:
                    self.dl_wakeup_pending = True
                    self.push(self.dl_next_allowed, "dl_wakeup")
                return
            v = self.dl_queue.popleft()
            self.dl_free -= 1
            if rate:
                self.dl_next_allowed = max(now, self.dl_next_allowed) + 1 / rate
            self.push(now + v.s[Stage.DOWNLOAD], "dl_done", v)

    def _start_gpu_tasks(self, now: float) -> None:
        while self.gpu_queue and self.free_slots:
            task = self.gpu_queue.popleft()
            slot = self.free_slots.pop()
            self.version[slot] += 1
            self.running[slot] = (task, now, self.version[slot])
            self.push(now + task.work - task.kept, "gpu_done", (slot, self.version[slot]))

    def _start_uploads(self, now: float) -> None:
        while self.up_queue and self.up_free > 0:
            v = self.up_queue.popleft()
            self.up_free -= 1
            self.push(now + v.s[Stage.COMMIT], "up_done", v)

    # --- event handlers ---
    def _on_dl_wakeup(self, now: float, data: None) -> bool:
        self.dl_wakeup_pending = False
        return True

    def _on_dl_done(self, now: float, v: Video) -> bool:
        self.dl_free += 1
        self.joins[v.vid] = 2
        self.gpu_queue.append(_Task(v, Stage.DIARIZE))
        self.gpu_queue.append(_Task(v, Stage.MUSIC))
        return True

    def _on_gpu_done(self, now: float, data: tuple[int, int]) -> bool:
        slot, ver = data
        if ver != self.version[slot] or slot not in self.running:
            return False  # the machine was evicted meanwhile
        task, started, _ = self.running.pop(slot)
        self.intervals.append((started, now))
        if self.machine_up[slot // self.spg]:
            self.free_slots.append(slot)
        v = task.video
        if task.stage == Stage.EMBED:
            self.up_queue.append(v)
        else:
            self.joins[v.vid] -= 1
            if self.joins[v.vid] == 0:
                del self.joins[v.vid]
                self.gpu_queue.append(_Task(v, Stage.EMBED))
        return True

    def _on_up_done(self, now: float, v: Video) -> bool:
        self.up_free += 1
        self.in_flight -= 1
        self.done.append((now, v.audio_h))
        return True

    def _on_requeue(self, now: float, task: _Task) -> bool:
        self.gpu_queue.append(task)
        return True

    def _on_evict(self, now: float, m: int) -> bool:
        if self.finished():
            return False
        self.evictions += 1
        self.machine_up[m] = False
        machine_slots = set(range(m * self.spg, (m + 1) * self.spg))
        self.free_slots[:] = [s for s in self.free_slots if s not in machine_slots]
        for slot in machine_slots:
            if slot in self.running:
                self._interrupt(slot, now)
        self.push(now + self.p.replace_s, "machine_up", m)
        return True

    def _interrupt(self, slot: int, now: float) -> None:
        """Stop the task on an evicted slot, keep its finished chunks, and hand it over."""
        task, started, _ = self.running.pop(slot)
        self.version[slot] += 1
        self.intervals.append((started, now))
        chunk_work = task.work * self.p.chunk_s / (task.video.audio_h * 3600)
        progress = task.kept + (now - started)
        task.kept = math.floor(progress / chunk_work) * chunk_work
        self.lost += progress - task.kept
        self.push(now + self.p.handover_s, "requeue", task)

    def _on_machine_up(self, now: float, m: int) -> bool:
        self.machine_up[m] = True
        self.free_slots.extend(range(m * self.spg, (m + 1) * self.spg))
        self.push(now + self.rng.expovariate(self.rate_per_s), "evict", m)
        return True

    # --- the run ---
    def run(self) -> Result:
        if self.rate_per_s > 0:
            for m in range(self.p.gpus):
                self.push(self.rng.expovariate(self.rate_per_s), "evict", m)
        now = 0.0
        self.pump(now)
        while self.heap:
            now, _, kind, data = heapq.heappop(self.heap)
            if not self.handlers[kind](now, data):
                continue
            self.pump(now)
            if self.finished():
                break
        return self._result(now)

    def _result(self, end: float) -> Result:
        busy, busy_warm = busy_fractions(self.intervals, self.p.slots, end)
        return Result(
            "pipelined",
            end,
            busy,
            busy_warm,
            len(self.done),
            sum(h for _, h in self.done),
            self.lost,
            self.evictions,
            warm_rate(self.done, end),
        )


def simulate_pipelined(p: Params, videos: list[Video], seed: int = 0) -> Result:
    return _PipelinedRun(p, videos, seed).run()


def simulate_serial(p: Params, videos: list[Video]) -> Result:
    """Each GPU slot downloads, processes and uploads one video at a time."""
    slots = p.slots
    heap: list = [(0.0, s) for s in range(slots)]  # (time the worker wants its next video, slot)
    heapq.heapify(heap)
    dl_next_allowed = 0.0
    intervals: list[tuple[float, float]] = []
    done: list[tuple[float, float]] = []
    end = 0.0
    for v in videos:
        t, slot = heapq.heappop(heap)
        if p.download_rate:
            t = max(t, dl_next_allowed)
            dl_next_allowed = t + 1 / p.download_rate
        gpu_start = t + v.s[Stage.DOWNLOAD]
        gpu_end = gpu_start + sum(v.s[stage] for stage in GPU_STAGES)
        intervals.append((gpu_start, gpu_end))
        finished = gpu_end + v.s[Stage.COMMIT]
        done.append((finished, v.audio_h))
        end = max(end, finished)
        heapq.heappush(heap, (finished, slot))
    busy, busy_warm = busy_fractions(intervals, slots, end)
    return Result(
        "serial",
        end,
        busy,
        busy_warm,
        len(done),
        sum(h for _, h in done),
        warm_audio_h_per_h=warm_rate(done, end),
    )


@dataclass
class Projection:
    days: float
    gpu_h: float
    dollars: float


def project(r: Result, p: Params, price: float) -> Projection:
    """Wall time for the real job: its audio at the warm rate, plus this run's fill and drain."""
    rate = r.warm_audio_h_per_h or r.audio_h_per_h
    overhead_h = max(0.0, r.makespan_s / 3600 - r.audio_h / rate)
    wall_h = JOB_AUDIO_H / rate + overhead_h
    gpu_h = p.gpus * wall_h  # every GPU is paid for the whole run, busy or not
    return Projection(wall_h / 24, gpu_h, gpu_h * price)


def describe(p: Params, videos: list[Video], lo_h: float, hi_h: float, figures: str) -> list[str]:
    audio = sum(v.audio_h for v in videos)
    cap = gpu_profiles.profile_for(p.gpu_class).max_audio_h
    over = [v for v in videos if v.audio_h > cap]
    rate = f"{p.download_rate:g}/s" if p.download_rate else "unlimited"
    costs = ", ".join(f"{s} {p.stage_s_per_h[s]:.1f}" for s in GPU_STAGES)
    lines = [
        (
            f"fleet: {p.gpus} x {p.gpu_class} ({p.slots_per_gpu} slot each: {p.slots} GPU slots), window "
            f"{p.window}, "
            f"downloads {p.download_slots} slots (rate {rate}), uploads {p.upload_slots} slots"
        ),
        (
            f"videos: {len(videos)}, {audio:,.0f} audio h (mean {audio / len(videos) * 60:.1f} min, "
            f"lognormal capped {lo_h * 60:.0f} min..{hi_h:g} h)"
        ),
        f"GPU s per audio h ({figures}): {costs}; jitter +-{p.jitter:.0%}",
        (
            f"download {p.download_overhead_s:g} s + {p.download_s_per_h:g} s/audio-h; upload "
            f"{p.upload_overhead_s:g} s + {p.upload_s_per_h:g} s/audio-h (ASSUMED)"
        ),
        (
            f"evictions: {p.preempt_per_gpu_h:g} per GPU-h, handover {p.handover_s:g} s, replacement "
            f"{p.replace_s:g} s, chunk {p.chunk_s:g} s of audio"
        ),
    ]
    n = len(videos)
    mean = {k: sum(v.s[k] for v in videos) / n for k in (Stage.DOWNLOAD, Stage.COMMIT, *GPU_STAGES)}
    capacity = {
        "downloads": p.download_slots * 3600 / mean[Stage.DOWNLOAD],
        "GPU": p.slots * 3600 / sum(mean[k] for k in GPU_STAGES),
        "uploads": p.upload_slots * 3600 / mean[Stage.COMMIT],
    }
    if p.download_rate:
        capacity["downloads"] = min(capacity["downloads"], p.download_rate * 3600)
    bottleneck = min(capacity, key=capacity.get)
    lines.append(
        "capacity, videos/h: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in capacity.items())
        + f" (bottleneck: {bottleneck})"
    )
    if over:
        lines.append(
            f"note: {len(over)} videos ({sum(v.audio_h for v in over) / audio:.1%} of the audio) exceed "
            f"{p.gpu_class}'s max_audio_h {cap:g} and would escalate; simulated here on {p.gpu_class} slots"
        )
    return lines


def report(p: Params, results: list[Result], price: float) -> list[str]:
    lines = [
        (
            f"{'design':<10} {'makespan':>9} {'busy':>6} {'warm':>6} {'videos/h':>9} {'audio-h/h':>10} "
            f"{'evictions':>9} {'lost GPU-h':>10}"
        )
    ]
    for r in results:
        lines.append(
            f"{r.design:<10} {r.makespan_s / 3600:>7.2f} h {r.busy:>6.3f} {r.busy_warm:>6.3f} "
            f"{r.videos_per_h:>9.1f} "
            f"{r.audio_h_per_h:>10.1f} {r.evictions:>9d} {r.lost_gpu_s / 3600:>10.2f}"
        )
    lines.append(
        f"projection: {JOB_VIDEOS:,} videos / {JOB_AUDIO_H:,.0f} audio h on {p.gpus} {p.gpu_class} "
        f"at ${price:g}/GPU-h (all GPUs billed for the whole wall time)"
    )
    for r in results:
        pr = project(r, p, price)
        lines.append(
            f"projection {r.design:<10} {pr.days:7.2f} days  {pr.gpu_h:>10,.0f} GPU-h  ${pr.dollars:>10,.0f} "
            " "
            f"${pr.dollars / JOB_AUDIO_H:.4f}/audio-h"
        )
    return lines


# --- validation on the real orchestration ------------------------------------------
_VALIDATE: dict = {"videos": {}, "scale": 1.0, "gpu": [], "max_s": 6 * 3600.0}


def _standins():
    """The pipeline's activities as sleeps of each video's simulated stage durations
    (scaled); GPU stages record when they ran, for the measured busy fraction."""

    async def wait(video_id: str, stage: Stage) -> None:
        began = time.monotonic()
        # stages the simulation does not model (the labels stage) take no time here either
        await asyncio.sleep(_VALIDATE["videos"][video_id].s.get(stage, 0.0) * _VALIDATE["scale"])
        if stage in GPU_STAGES:
            _VALIDATE["gpu"].append((began, time.monotonic()))

    def duration(video_id: str) -> float:  # capped: no escalation in the simulation
        return min(_VALIDATE["videos"][video_id].audio_h * 3600, _VALIDATE["max_s"])

    return stand_in_activities(wait, duration)


def _prepare_validation(p: Params, videos: list[Video], target_s: float) -> tuple[Result, float]:
    """The simulation's prediction and the time scale that makes it last ``target_s``; sets
    the stand-ins' shared state for this batch."""
    predicted = simulate_pipelined(p, videos)
    scale = target_s / predicted.makespan_s
    _VALIDATE.update(
        videos={f"fleet-{v.vid}": v for v in videos},
        scale=scale,
        gpu=[],
        max_s=gpu_profiles.profile_for(p.gpu_class).max_audio_h * 3600,
    )
    return predicted, scale


def _validation_workers(client, p: Params, stand_ins, prefix: str, scale: float) -> list:
    """The workflow, download and GPU workers of the fleet, sized as ``p`` (not started)."""
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.worker import Worker

    from core.contracts import queues
    from workflows.sandbox import workflow_runner
    from workflows.video import VideoWorkflow

    executor = ThreadPoolExecutor(8)
    rate = p.download_rate / scale if p.download_rate else None
    return [
        Worker(
            client,
            task_queue=queues.workflow_queue(prefix),
            workflows=[VideoWorkflow],
            workflow_runner=workflow_runner(),
            max_concurrent_workflow_tasks=64,
            activities=stand_ins.upload,
            activity_executor=executor,
            max_concurrent_local_activities=p.upload_slots,
        ),
        Worker(
            client,
            task_queue=queues.download_queue(prefix),
            activities=stand_ins.download,
            activity_executor=executor,
            max_concurrent_activities=p.download_slots,
            max_task_queue_activities_per_second=rate,
        ),
        Worker(
            client,
            task_queue=queues.gpu_queue(prefix, p.gpu_class),
            activities=stand_ins.gpu,
            activity_executor=executor,
            max_concurrent_activities=p.slots,
        ),
    ]


async def _run_videos(client, p: Params, videos: list[Video], prefix: str) -> float:
    """Run every video's VideoWorkflow, at most ``p.window`` at once; the wall seconds taken."""
    from core.contracts import queues
    from core.contracts.video import VideoJob, VideoSpec
    from workflows.video import VideoWorkflow

    window = asyncio.Semaphore(p.window)
    began = time.monotonic()

    async def one(v: Video) -> None:
        async with window:
            spec = VideoSpec(video_id=f"fleet-{v.vid}", url="http://127.0.0.1/x.ogg", batch_id="fleet")
            job = VideoJob(spec=spec, queue_prefix=prefix, gpu_class=p.gpu_class)
            handle = await client.start_workflow(
                VideoWorkflow.run,
                job,
                id=f"video-fleet-{v.vid}-{began}",
                task_queue=queues.workflow_queue(prefix),
            )
            await handle.result()

    await asyncio.gather(*(one(v) for v in videos))
    return time.monotonic() - began


def _print_validation(
    p: Params, videos: list[Video], predicted: Result, scale: float, busy: float, makespan: float
) -> None:
    print(
        f"validate: {len(videos)} videos on the embedded Temporal stack, real VideoWorkflow, stand-in "
        "activities "
        f"sleeping simulated seconds x {scale:.5f}"
    )
    print(
        f"validate: {p.slots} GPU slots, window {p.window}, {p.download_slots} download / {p.upload_slots} "
        "upload slots"
    )
    print(f"{'':<22} {'busy':>6} {'makespan (sim s)':>17}")
    print(f"{'simulated':<22} {predicted.busy:>6.3f} {predicted.makespan_s:>17.0f}")
    print(f"{'real orchestration':<22} {busy:>6.3f} {makespan / scale:>17.0f}   ({makespan:.1f} s wall)")
    gpu_tasks = 3 * len(videos)
    extra_idle = p.slots * (makespan * (1 - busy) - predicted.makespan_s * scale * (1 - predicted.busy))
    print(
        f"validate: real/simulated busy {busy / predicted.busy:.3f}; the gap is "
        f"~{extra_idle / gpu_tasks * 1000:.0f} ms "
        f"of extra idle slot time per GPU activity (dispatch latency, real seconds, not scaled)"
    )


async def validate(p: Params, videos: list[Video], target_s: float, data: Path) -> int:
    from core.service.temporal import connect
    from devstack.stack import REPO_ROOT, Stack, StackConfig

    predicted, scale = _prepare_validation(p, videos, target_s)
    prefix = "fleet"
    stand_ins = _standins()
    stack = Stack(StackConfig.ephemeral(data, REPO_ROOT / "samples" / "audio"))
    stack.start_temporal()
    try:
        client = await connect(stack.settings())
        workers = _validation_workers(client, p, stand_ins, prefix, scale)
        tasks = [asyncio.create_task(w.run()) for w in workers]
        makespan = await _run_videos(client, p, videos, prefix)
        busy = sum(e - s for s, e in _VALIDATE["gpu"]) / (p.slots * makespan)
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stack.stop()
    _print_validation(p, videos, predicted, scale, busy, makespan)
    return 0


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
        "--upload-slots",
        type=int,
        help="fleet-wide upload slots (default: the same pods x their light-activity slots; "
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
    parser.add_argument("--download-overhead-s", type=float, default=30.0)
    parser.add_argument("--download-s-per-h", type=float, default=70.0)
    parser.add_argument("--upload-overhead-s", type=float, default=5.0)
    parser.add_argument("--upload-s-per-h", type=float, default=15.0)
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
    deployed_downloads, deployed_uploads = deployed_cpu_slots()
    return Params(
        gpus=a.gpus or (2 if small else 150),
        gpu_class=a.gpu_class,
        window=a.window or (8 if small else 2000),
        download_slots=a.download_slots or (2 if small else deployed_downloads),
        download_rate=a.download_rate,
        upload_slots=a.upload_slots or (2 if small else deployed_uploads),
        stage_s_per_h=stage_s_per_h,
        download_overhead_s=a.download_overhead_s,
        download_s_per_h=a.download_s_per_h,
        upload_overhead_s=a.upload_overhead_s,
        upload_s_per_h=a.upload_s_per_h,
        jitter=a.jitter,
        preempt_per_gpu_h=a.preempt_per_gpu_hour,
        handover_s=a.handover_s,
        replace_s=a.replace_s,
        chunk_s=a.chunk_s,
    )


def _run_validation(p: Params, videos: list[Video], target_s: float) -> None:
    from benchmarks.scratch import run_in_scratch

    run_in_scratch("fleet-", lambda tmp: validate(p, videos, target_s, tmp))


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
        _run_validation(p, videos, a.validate_seconds)
    _run_simulation(p, videos, price, a.seed)


if __name__ == "__main__":
    main()
