"""The fleet model: a seeded discrete-event simulation of the pipeline's queues, and
the projection of the real job from it (``benchmarks/fleet.py`` runs it; its docstring
says what is simulated and which figures are assumed)."""

from __future__ import annotations

import heapq
import math
import random
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from core.contracts import gpu_profiles, queues
from core.contracts.stages import Stage
from core.service.settings import Settings

CPU_WORKER_MANIFEST = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "base" / "worker-cpu.yaml"


def deployed_cpu_slots() -> tuple[int, int]:
    """(download, commit) slots of the CPU workers at the deployment's replica ceiling:
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
# embeddings, a small music classifier; the labels run on the machine's CPU: DNSMOS once
# per speaker per hour, the audio events, the signal labels).
T4_STAGE_S_PER_H = {Stage.DIARIZE: 120.0, Stage.MUSIC: 30.0, Stage.EMBED: 60.0, Stage.LABELS: 60.0}
# ASSUMED speed of one slot of each class relative to a T4 (>1: faster).
CLASS_SPEED = {"cpu": 1.0, "t4": 1.0, "l4": 1.6, "a10": 1.8, "a100-40": 2.5, "a100-80": 2.5, "h100": 4.0}
# MEASURED: the pretrained backend on 2 CPU cores, one thread per model call
# (benchmarks.speed --minutes 60, the job's videos being 50 min on average; 2026-12-07),
# CPU s per audio minute x 60 = s per audio hour: what one slot of a 2-core, 2-slot
# machine spends.
CPU_STAGE_S_PER_H = {
    Stage.DIARIZE: 1.99 * 60,
    Stage.MUSIC: 0.08 * 60,
    Stage.EMBED: 0.01 * 60,
    Stage.LABELS: 0.37 * 60,
}
GPU_STAGES = (Stage.DIARIZE, Stage.MUSIC, Stage.EMBED, Stage.LABELS)


@dataclass
class Params:
    """One simulated fleet; the defaults of the sizes live in main() (--help)."""

    gpus: int
    gpu_class: str
    window: int
    download_slots: int
    download_rate: float | None  # starts per second fleet-wide; None: unlimited
    commit_slots: int
    stage_s_per_h: dict[str, float] = field(default_factory=dict)
    download_overhead_s: float = 30.0
    download_s_per_h: float = 70.0
    commit_overhead_s: float = 5.0
    commit_s_per_h: float = 15.0
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
    s: dict[str, float]  # seconds of each stage: download, diarize, music, embed, commit


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
            Stage.COMMIT: (p.commit_overhead_s + p.commit_s_per_h * h) * jit(),
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
        self.commit_queue: deque[Video] = deque()
        self.commit_free = p.commit_slots
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
            "commit_done": self._on_commit_done,
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
        self._start_commits(now)

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

    def _start_commits(self, now: float) -> None:
        while self.commit_queue and self.commit_free > 0:
            v = self.commit_queue.popleft()
            self.commit_free -= 1
            self.push(now + v.s[Stage.COMMIT], "commit_done", v)

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
        self.joins[v.vid] -= 1
        if self.joins[v.vid] == 0:  # (diarize, music) then (embed, labels): each pair joins
            if task.stage in (Stage.EMBED, Stage.LABELS):
                del self.joins[v.vid]
                self.commit_queue.append(v)
            else:
                self.joins[v.vid] = 2
                self.gpu_queue.append(_Task(v, Stage.EMBED))
                self.gpu_queue.append(_Task(v, Stage.LABELS))
        return True

    def _on_commit_done(self, now: float, v: Video) -> bool:
        self.commit_free += 1
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
    """Each GPU slot downloads, processes and commits one video at a time."""
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
            f"downloads {p.download_slots} slots (rate {rate}), commits {p.commit_slots} slots"
        ),
        (
            f"videos: {len(videos)}, {audio:,.0f} audio h (mean {audio / len(videos) * 60:.1f} min, "
            f"lognormal capped {lo_h * 60:.0f} min..{hi_h:g} h)"
        ),
        f"GPU s per audio h ({figures}): {costs}; jitter +-{p.jitter:.0%}",
        (
            f"download {p.download_overhead_s:g} s + {p.download_s_per_h:g} s/audio-h; commit "
            f"{p.commit_overhead_s:g} s + {p.commit_s_per_h:g} s/audio-h (ASSUMED)"
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
        "commits": p.commit_slots * 3600 / mean[Stage.COMMIT],
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
