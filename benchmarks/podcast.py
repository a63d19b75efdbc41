"""A real-length podcast through the real stack: how many times real time, end to end.

    python -m benchmarks.podcast [--minutes 60] [--videos 1] [--seed 0] [--timeout-min 30] [--keep DIR]
                                 [--reupload]

Why: ``benchmarks.speed`` times each stage in-process on a few minutes, but the goal
(60x real time for a 60-minute podcast on 2 cores) is about what an operator sees:
one video going from the starter to a committed ``metadata.json`` through Temporal,
storage, yt-dlp, the worker's queues and every stage. So this builds an hour-long
recording and runs it through the embedded stack exactly as ``make demo`` does.

The recording comes from /work/shared/eval only: the annotated diarization files laid
out again and again, each round in another seeded order (so voices come back after
minutes, as hosts do), with short pauses and, between some of them, an excerpt of an
instrumental music clip (a music clip whose labels are all ``music``; clips with
speech would bring unannotated voices). It is assembled at 16 kHz mono, written to
disk piece by piece, and encoded as a podcast arrives from YouTube: 44.1 kHz stereo
AAC in an .m4a, served over HTTP so the download stage really downloads and decodes.

Reference speakers: AMI participant ids (``MEE009``) name one person across meetings
and stay as they are; every other file's labels only mean something inside that file
and become ``<uri>:<label>``. A speaker counts if a turn of theirs starts inside the
built recording.

Printed: the wall time from starting the batch to the video's commit and the x real
time it makes; per stage the wall seconds of stats.json (queue time and retries
included) and its compute seconds (the activity's own clock, so diarize and music,
which run side by side, share the cores) also per audio minute; the upload is not in
stats.json (it writes it), so its line is the video workflow's run time minus the
stages before it. The one CPU figure is the worker process tree's (from /proc: the
worker and its ffmpeg/yt-dlp children, counted from when it was ready, so imports are
out and lazy model loads are in), per audio minute. Then speakers found vs reference,
usable %, music found vs built, whether the goal is met (printed, never asserted) and
one summary line starting ``podcast:``. A stage failing more than --max-attempts
times ends the run with ``podcast: FAILED``: the model stages retry for hours.

``--videos N`` builds N podcasts (seeds ``--seed`` to ``--seed`` + N - 1) and starts
them as one batch: what a worker's cores do when the next video downloads and decodes
beside this one's models, and its slots each hold a video. Each video gets its own
report (its wall clock from the batch's start); the worker's CPU, cores busy and memory
are the batch's, in one ``batch:`` line.

``--reupload`` adds the first podcast again under another URL and id, re-encoded as
YouTube re-uploads arrive (MP3 64 kbps), in the same batch: both download at once and
claim their audio; the one claimed second must commit as a Duplicate of the other
without the model stages. Its line (``reupload:``) gives its download (the fingerprint
included), claim and wait, from its workflow's result.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # pyannote telemetry: no network

import numpy as np
import soundfile as sf

from core.contracts.metadata import Metadata, SpokenLanguage
from core.contracts.stages import Stage
from core.contracts.video import VideoOutcome
from core.service.memory import status_mib
from devstack.media import ffmpeg

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL = REPO_ROOT.parent / "shared" / "eval"
RATE = 16_000  # assembly rate; ffmpeg upsamples on encoding
SOURCE_RATE = 44_100  # what a YouTube m4a carries
AMI_SPEAKER = re.compile(r"^[MF]E[EO]\d{3}$")
PAUSE_S = (0.3, 1.5)  # between two pieces
MUSIC_S = (4.0, 12.0)  # one music excerpt
MUSIC_CHANCE = 0.4  # a music break between two speech pieces
FADE_S = 0.02  # a cut mid-waveform clicks
GOAL_X = 60.0  # the goal: x real time on 2 cores for 60 minutes
STAGES = (Stage.DOWNLOAD, Stage.CLAIM, Stage.DIARIZE, Stage.MUSIC, Stage.EMBED, Stage.LABELS)
REUPLOAD_SUFFIX = "-reupload"
VIDEO_ID = "podcast-benchmark"
BATCH_ID = "podcast-benchmark"


# ------------------------------------------------------------------------- sources


@dataclass
class Speech:
    """One annotated eval file: samples and turns with labels already made global."""

    uri: str
    samples: np.ndarray
    turns: list[tuple[float, float, str]]


def global_label(uri: str, label: str) -> str:
    """AMI ids are people across meetings; other labels are only names inside a file."""
    return label if AMI_SPEAKER.match(label) else f"{uri}:{label}"


def load_speech(eval_dir: Path, workdir: Path) -> list[Speech]:
    """Every diarization file with a reference, decoded as the pipeline decodes."""
    from benchmarks.eval_set import decode
    from core.contracts.rttm import read_rttm

    sources = []
    for path in sorted((eval_dir / "diarization" / "audio").glob("*.wav")):
        rttm = eval_dir / "diarization" / "rttm" / f"{path.stem}.rttm"
        samples = decode(path, workdir) if rttm.exists() else None
        if samples is None or not samples.size:
            continue
        turns = [(t.start, t.end, global_label(path.stem, t.speaker)) for t in read_rttm(rttm)]
        sources.append(Speech(path.stem, samples, turns))
    if not sources:
        raise SystemExit(f"no annotated speech in {eval_dir / 'diarization'}")
    return sources


def load_music(eval_dir: Path, workdir: Path) -> list[np.ndarray]:
    """Instrumental clips only: a clip with speech rows would add unannotated voices."""
    from benchmarks.eval_set import decode, read_labels

    clips = []
    for path in sorted((eval_dir / "music" / "audio").glob("*")):
        labels = eval_dir / "music" / "labels" / f"{path.stem}.csv"
        rows = read_labels(labels) if labels.exists() else []
        if rows and all(label == "music" for _, _, label in rows):
            samples = decode(path, workdir)
            if samples is not None and samples.size > RATE * MUSIC_S[1]:
                clips.append(samples)
    if not clips:
        raise SystemExit(f"no instrumental clip in {eval_dir / 'music'}")
    return clips


# -------------------------------------------------------------------------- layout


@dataclass
class Piece:
    """One stretch of the recording; ``turns`` are relative to the piece's start."""

    kind: str  # speech | music | pause
    samples: np.ndarray
    turns: list[tuple[float, float, str]] = field(default_factory=list)


def faded(samples: np.ndarray) -> np.ndarray:
    """A copy with short fades at both ends, so cuts between pieces do not click."""
    out = samples.astype(np.float32, copy=True)
    n = min(int(FADE_S * RATE), len(out) // 2)
    if n:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


def pause(rng: random.Random) -> Piece:
    return Piece("pause", np.zeros(int(rng.uniform(*PAUSE_S) * RATE), dtype=np.float32))


def music_excerpt(rng: random.Random, clips: list[np.ndarray]) -> Piece:
    """A random stretch of a random clip: breaks differ like a show's stings do."""
    clip = rng.choice(clips)
    n = int(rng.uniform(*MUSIC_S) * RATE)
    start = rng.randrange(0, len(clip) - n)
    return Piece("music", faded(clip[start : start + n]))


def layout(speech: list[Speech], clips: list[np.ndarray], seed: int) -> Iterator[Piece]:
    """Endless podcast: a music intro, then rounds of every speech file in a new seeded
    order, a pause after each and sometimes a music break; the caller cuts it."""
    rng = random.Random(seed)
    yield music_excerpt(rng, clips)
    while True:
        order = speech[:]
        rng.shuffle(order)
        for source in order:
            yield pause(rng)
            yield Piece("speech", faded(source.samples), source.turns)
            if rng.random() < MUSIC_CHANCE:
                yield pause(rng)
                yield music_excerpt(rng, clips)


@dataclass
class Built:
    """What was written: its length and the reference that goes with it."""

    seconds: float = 0.0
    turns: list[tuple[float, float, str]] = field(default_factory=list)
    music_s: float = 0.0

    @property
    def speakers(self) -> set[str]:
        return {speaker for _, _, speaker in self.turns}


def write_recording(pieces: Iterator[Piece], path: Path, seconds: float) -> Built:
    """Stream pieces into a 16 kHz PCM WAV until ``seconds``; an hour never sits in memory."""
    want, have, built = round(seconds * RATE), 0, Built()
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16") as out:
        for piece in pieces:
            if have >= want:
                break
            chunk = piece.samples[: want - have]
            if len(chunk) < len(piece.samples):
                chunk = faded(chunk)
            offset, end = have / RATE, (have + len(chunk)) / RATE
            built.turns += [
                (offset + s, min(offset + e, end), who) for s, e, who in piece.turns if offset + s < end
            ]
            built.music_s += len(chunk) / RATE if piece.kind == "music" else 0.0
            out.write(chunk)
            have += len(chunk)
    built.seconds = have / RATE
    return built


def encode_m4a(wav: Path, m4a: Path) -> Path:
    """44.1 kHz stereo AAC in an MP4 container: what a podcast download from YouTube is."""
    from core.analysis.audio import ffmpeg_binary
    from core.service.settings import Settings

    cmd = [
        ffmpeg_binary(Settings().ffmpeg_location),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(wav),
        "-af",
        f"aresample={SOURCE_RATE}",
        "-ac",
        "2",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-movflags",
        "+faststart",
        str(m4a),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ffmpeg could not encode the podcast: {proc.stderr.strip()[-300:]}")
    return m4a


def write_reference(built: Built, path: Path, uri: str) -> None:
    """The built recording's RTTM, so a kept run can be scored (benchmarks.quality)."""
    lines = [
        f"SPEAKER {uri} 1 {s:.3f} {e - s:.3f} <NA> <NA> {who} <NA> <NA>" for s, e, who in built.turns if e > s
    ]
    path.write_text("\n".join(lines) + "\n")


def build_podcast(
    minutes: float, seed: int, media_dir: Path, workdir: Path, video_id: str = VIDEO_ID
) -> tuple[Path, Built]:
    """The .m4a the media server serves, and its reference."""
    speech, clips = load_speech(EVAL, workdir), load_music(EVAL, workdir)
    wav = workdir / "podcast_16k.wav"
    built = write_recording(layout(speech, clips, seed), wav, minutes * 60)
    m4a = encode_m4a(wav, media_dir / f"{video_id}.m4a")
    wav.unlink()
    write_reference(built, media_dir / f"{video_id}.rttm", video_id)
    return m4a, built


def video_ids(count: int) -> list[str]:
    """One video keeps the name earlier runs and the export benchmark know."""
    return [VIDEO_ID] if count == 1 else [f"{VIDEO_ID}-{i + 1}" for i in range(count)]


# ----------------------------------------------------------------------- CPU clock


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks of it and of its reaped children) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        table[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return table


def _tree(pid: int, table: dict[int, tuple[int, int]]) -> set[int]:
    tree, frontier = set(), [pid]
    while frontier:
        current = frontier.pop()
        tree.add(current)
        frontier += [child for child, (parent, _) in table.items() if parent == current and child not in tree]
    return tree


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its descendants, live or reaped (ffmpeg, yt-dlp).

    Reading /proc needs no psutil; a reaped child's time is in its parent's cutime."""
    table = _proc_stats()
    return sum(table[p][1] for p in _tree(pid, table) if p in table) / os.sysconf("SC_CLK_TCK")


class TreeMemory:
    """The highest resident memory of a process and its descendants together (the
    worker and its ffmpeg and yt-dlp children), sampled every ``every_s`` on a thread;
    the worker's own VmHWM catches what falls between samples."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid, self.every_s, self.peak_mib = pid, every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            tree = _tree(self.pid, _proc_stats())
            self.peak_mib = max(self.peak_mib, sum(status_mib(p) for p in tree))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak_mib, status_mib(self.pid, "VmHWM"))


# --------------------------------------------------------------------------- stack


def wait_for_worker(stack, timeout_s: float = 300) -> float:
    """Seconds until the worker logs ``worker.started``: the clock must not count imports."""
    started, log = time.monotonic(), stack.logs / "worker.log"
    proc = stack.procs["worker"]
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        if log.exists() and "worker.started" in log.read_text(errors="replace"):
            return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"the worker did not start within {timeout_s:.0f} s; see {log}")


@dataclass
class Run:
    """One video through the stack, as Temporal and storage recorded it."""

    video_id: str
    started: float  # epoch s, just before the batch was started
    video_started: datetime
    video_closed: datetime
    status: str
    error_type: str | None
    stats: dict | None
    metadata: Metadata | None
    outcome: VideoOutcome | None = None  # the workflow's result: a Duplicate has no stats.json

    @property
    def workflow_s(self) -> float:
        return (self.video_closed - self.video_started).total_seconds()


@dataclass
class Worker:
    """What the worker spent on the whole batch."""

    cpu_s: float = 0.0  # the worker and its children, from when it was ready
    peak_mib: float = 0.0  # the worker process's VmHWM (its ffmpeg children apart)
    ready_mib: float = 0.0  # its resident memory once started (models not all loaded)
    tree_peak_mib: float = 0.0  # the worker and its children together, at their highest

    @property
    def workflow_s(self) -> float:
        return (self.video_closed - self.video_started).total_seconds()


class StageFailing(RuntimeError):
    """A stage keeps failing: its retries would outlast any timeout, so the run stops."""


async def pending_stages(client, video_id: str) -> list:
    """The video's activities now scheduled or running (none before the workflow exists)."""
    from temporalio.service import RPCError

    from core.contracts.ids import video_workflow_id

    try:
        described = await client.get_workflow_handle(video_workflow_id(video_id)).describe()
    except RPCError:
        return []
    return list(described.raw_description.pending_activities)


async def watch(
    client, ids: list[str], max_attempts: int, every_s: float = 5.0, report_s: float = 60.0
) -> None:
    """Print the live stage now and then (an hour-long run is otherwise silent) and raise
    StageFailing when a stage passes ``max_attempts``: the model stages retry for hours."""
    started, last_report = time.monotonic(), 0.0
    while True:
        await asyncio.sleep(every_s)
        pending = [a for video_id in ids for a in await pending_stages(client, video_id)]
        for activity in pending:
            if activity.attempt > max_attempts:
                raise StageFailing(
                    f"{activity.activity_type.name} is at attempt {activity.attempt}; "
                    f"last failure: {activity.last_failure.message or 'none recorded'}"
                )
        elapsed = time.monotonic() - started
        if elapsed - last_report >= report_s:
            last_report = elapsed
            running = ", ".join(f"{a.activity_type.name} (attempt {a.attempt})" for a in pending) or "-"
            print(f"  ... {elapsed:.0f} s: {running}", flush=True)


async def wait_or_fail(client, ids: list[str], timeout_s: float, max_attempts: int) -> None:
    """The batch's end or the first stage failing for good, whichever comes first."""
    from starter.status import wait_for_batch

    waiting = asyncio.create_task(wait_for_batch(client, BATCH_ID, poll_s=0.5, timeout_s=timeout_s))
    watching = asyncio.create_task(watch(client, ids, max_attempts))
    done, _ = await asyncio.wait([waiting, watching], return_when=asyncio.FIRST_COMPLETED)
    for task in (waiting, watching):
        if task not in done:
            task.cancel()
    for task in done:
        task.result()  # re-raises TimeoutError or StageFailing


async def run_videos(
    stack, videos: list[tuple[str, Path, float]], timeout_s: float, max_attempts: int
) -> list[Run]:
    """Start one batch of (video id, .m4a, seconds) through the starter, as the demo
    does, all at once, and read each video's outputs back."""
    from core.contracts.ids import video_workflow_id
    from core.service.temporal import connect
    from core.store.commit import read_metadata
    from core.store.objects import ObjectStore
    from starter.batch import start_batch
    from starter.status import list_videos

    settings = stack.settings()
    client = await connect(settings)
    csv_path = videos[0][1].parent / "batch.csv"
    rows = [f"{video_id},{stack.media_url}/{m4a.name},{seconds:.1f}" for video_id, m4a, seconds in videos]
    csv_path.write_text("\n".join(["video_id,url,duration_s", *rows]) + "\n")
    ids = [video_id for video_id, _, _ in videos]
    started = time.time()
    report = await start_batch(client, settings, csv_path, BATCH_ID, window=len(videos))
    if not report.submitted or report.invalid:
        raise SystemExit(f"the batch did not start: {report.reason or [str(e) for e in report.invalid]}")
    await wait_or_fail(client, ids, timeout_s, max_attempts)
    listed = {r.video_id: r for r in await list_videos(client, BATCH_ID)}
    store = ObjectStore(settings)
    runs = []
    for video_id in ids:
        handle = client.get_workflow_handle(video_workflow_id(video_id), result_type=VideoOutcome)
        described = await handle.describe()
        outcome = await handle.result() if listed[video_id].status == "Completed" else None
        runs.append(
            Run(
                video_id=video_id,
                started=started,
                video_started=described.start_time,
                video_closed=described.close_time,
                status=listed[video_id].status,
                error_type=listed[video_id].error_type,
                stats=await asyncio.to_thread(store.get_json_or_none, store.keys(video_id).stats),
                metadata=await asyncio.to_thread(read_metadata, store, video_id),
                outcome=outcome,
            )
        )
    return runs


def run_through_stack(
    videos: list[tuple[str, Path, float]], data_dir: Path, timeout_s: float, max_attempts: int
) -> tuple[list[Run], Worker]:
    """The embedded stack on free ports and its own data dir, so nothing else collides."""
    from devstack.stack import Stack, StackConfig

    stack = Stack(StackConfig.ephemeral(data_dir, videos[0][1].parent))
    stack.start()
    try:
        ready_s = wait_for_worker(stack)
        pid = stack.procs["worker"].pid
        print(
            f"stack: Temporal {stack.temporal_address}, S3 {stack.s3_url}, media {stack.media_url}, "
            f"worker pid {pid} ready in {ready_s:.1f} s, logs {stack.logs}",
            flush=True,
        )
        cpu0 = tree_cpu_s(pid)
        worker, tree = Worker(ready_mib=status_mib(pid)), TreeMemory(pid)
        try:
            runs = asyncio.run(run_videos(stack, videos, timeout_s, max_attempts))
        finally:
            worker.tree_peak_mib = tree.stop()
        worker.cpu_s, worker.peak_mib = tree_cpu_s(pid) - cpu0, status_mib(pid, "VmHWM")
        return runs, worker
    finally:
        stack.stop()


# -------------------------------------------------------------------------- report


def stage_lines(run: Run, minutes: float) -> list[str]:
    """Wall and compute seconds by stage, compute per audio minute; the upload's wall is
    what the workflow's run time leaves after the stages on its critical path."""
    wall, compute = run.stats["stage_wall_s"], run.stats["stage_compute_s"]
    peaks = run.stats.get("stage_peak_rss_mib", {})
    lines = [f"  {'stage':<9} {'wall s':>9} {'compute s':>10} {'compute-s/audio-min':>20} {'peak MiB':>9}"]
    for stage in STAGES:
        cost = compute.get(stage)
        per_min = f"{cost / minutes:>20.2f}" if cost is not None else f"{'-':>20}"
        peak = f"{peaks[stage]:>9.0f}" if peaks.get(stage) else f"{'-':>9}"
        lines.append(f"  {stage:<9} {wall.get(stage, 0.0):>9.1f} {cost or 0.0:>10.1f} {per_min} {peak}")
    lines.append(
        f"  {'commit':<9} {commit_wall_s(run):>9.1f} {'-':>10} {'-':>20} {'-':>9}"
        "   (not in stats.json: workflow run time minus the stages before it)"
    )
    lines.append(
        "  (peak MiB: the worker process's resident memory at its highest while the stage ran,"
        " the stage beside it included)"
    )
    return lines


def commit_wall_s(run: Run) -> float:
    wall = run.stats["stage_wall_s"]
    before = (
        wall.get(Stage.DOWNLOAD, 0)
        + max(wall.get(Stage.DIARIZE, 0), wall.get(Stage.MUSIC, 0))
        + max(wall.get(Stage.EMBED, 0), wall.get(Stage.LABELS, 0))
    )
    return max(0.0, run.workflow_s - before)


def summary_line(run: Run, total_s: float, worker: Worker, batch_minutes: float, reference: int) -> str:
    """One line for the video; the worker's figures are the batch's (``batch_minutes``
    of audio), so with several videos its CPU is their average."""
    assert run.metadata is not None  # a completed video
    minutes, found = run.metadata.duration_s / 60, run.metadata.num_speakers
    wall = {**run.stats["stage_wall_s"], Stage.COMMIT: commit_wall_s(run)}
    stages = ", ".join(f"{s} {wall.get(s, 0.0):.1f}s" for s in (*STAGES, Stage.COMMIT))
    usable, x = run.metadata.usable_pct, minutes * 60 / total_s
    return (
        f"podcast: {minutes:.1f} audio-min in {total_s:.0f} s wall = {x:.1f}x real time; "
        f"stages {stages}; speakers {found}/{reference}; usable {usable:.1f}%; "
        f"worker {worker.cpu_s / batch_minutes:.1f} CPU-s/audio-min, peak {worker.peak_mib:.0f} MiB"
    )


def figure_lines(run: Run, built: Built, minutes: float, total_s: float) -> list[str]:
    """The video's figures but the per-stage table and the summary, one per line."""
    meta, x = run.metadata, minutes * 60 / total_s
    music_found = sum(m.end - m.start for m in meta.music)
    verdict = "met" if x >= GOAL_X else "not met"
    return [
        (
            f"wall: {total_s:.1f} s from starting the batch to the commit "
            f"(video workflow {run.workflow_s:.1f} s) = {x:.1f}x real time"
        ),
        f"speakers: found {meta.num_speakers}, reference {len(built.speakers)}",
        f"usable: {meta.usable_pct:.1f}% ({meta.usable_s:.0f} s)",
        f"music: found {music_found:.0f} s, built {built.music_s:.0f} s",
        f"language: {_heard(meta.language)}; speakers heard: "
        + (", ".join(_heard(s.language) for s in meta.speakers.values() if s.language) or "none"),
        f"goal >= {GOAL_X:.0f}x real time (60 min on 2 cores): {verdict} ({x:.1f}x)",
    ]


def _heard(language: SpokenLanguage | None) -> str:
    return f"{language.language} {language.probability:.2f}" if language else "none"


def worker_lines(worker: Worker, minutes: float, wall_s: float) -> list[str]:
    """What the worker spent on ``minutes`` of audio in ``wall_s`` (the whole batch)."""
    return [
        (
            f"worker process tree: {worker.cpu_s:.1f} CPU-s = {worker.cpu_s / minutes:.2f} CPU-s per "
            f"audio minute, {worker.cpu_s / wall_s:.2f} cores busy on average ({os.cpu_count()} here)"
        ),
        (
            f"worker peak resident memory (VmHWM): {worker.peak_mib:.0f} MiB "
            f"({worker.ready_mib:.0f} MiB once started); with its children, sampled: "
            f"{worker.tree_peak_mib:.0f} MiB"
        ),
    ]


def report(runs: list[Run], worker: Worker, built: list[Built], requested_min: float) -> int:
    """Print every figure; 0 only if every video completed with its outputs."""
    failed = 0
    copies = [run for run in runs if run.metadata and run.metadata.duplicate_of]
    failed += reupload_lines(runs, copies)
    # the built podcasts' reports: if the first is the Duplicate, its re-upload stands in for it
    first, reupload = runs[0], next((r for r in runs if r.video_id.endswith(REUPLOAD_SUFFIX)), None)
    runs = [run for run in runs if run is not reupload]
    if reupload is not None and first in copies:
        runs[0] = reupload
    batch_minutes = sum(run.metadata.duration_s for run in runs if run.metadata) / 60
    for run, made in zip(runs, built):
        total_s = run.video_closed.timestamp() - run.started
        error = f" ({run.error_type})" if run.error_type else ""
        print(f"video {run.video_id}: {run.status.lower()}{error} after {total_s:.1f} s")
        if run.status != "Completed" or not run.stats or not run.metadata:
            print(f"podcast: FAILED ({run.error_type or run.status}) after {total_s:.0f} s")
            failed += 1
            continue
        minutes = run.metadata.duration_s / 60
        print(f"audio: {minutes:.2f} min (built {made.seconds / 60:.2f}, asked {requested_min:.2f})")
        lines = figure_lines(run, made, minutes, total_s)
        if len(runs) == 1:  # the worker spent it all on this video
            lines[-1:-1] = worker_lines(worker, minutes, total_s)
        print("\n".join([lines[0], *stage_lines(run, minutes), *lines[1:]]))
        print(summary_line(run, total_s, worker, batch_minutes, len(made.speakers)))
    if len(runs) > 1 and not failed:
        wall_s = max(run.video_closed.timestamp() for run in runs) - runs[0].started
        print("\n".join(worker_lines(worker, batch_minutes, wall_s)))
        print(
            f"batch: {len(runs)} videos, {batch_minutes:.1f} audio-min in {wall_s:.0f} s wall = "
            f"{batch_minutes * 60 / wall_s:.1f}x real time; "
            f"worker {worker.cpu_s / batch_minutes:.2f} CPU-s/audio-min, "
            f"{worker.cpu_s / wall_s:.2f} cores busy, peak {worker.peak_mib:.0f} MiB",
            flush=True,
        )
    return 1 if failed else 0


def reupload_lines(runs: list[Run], copies: list[Run]) -> int:
    """The re-upload's line: which of the two was the Duplicate and what it cost. 1 if a
    re-upload was asked for and the pair did not end as one original and one Duplicate."""
    pair = [run for run in runs if run.video_id.removesuffix(REUPLOAD_SUFFIX) == runs[0].video_id]
    if len(pair) < 2:
        return 0
    if len(copies) != 1 or copies[0].outcome is None:
        print(f"reupload: FAILED: {len(copies)} of the pair committed as a Duplicate")
        return 1
    copy = copies[0]
    assert copy.metadata is not None
    wall = copy.outcome.stage_seconds
    total_s = copy.video_closed.timestamp() - copy.started
    waited = copy.workflow_s - sum(wall.values())
    print(
        f"reupload: {copy.video_id} ({copy.metadata.duration_s / 60:.1f} audio-min) is a Duplicate of "
        f"{copy.metadata.duplicate_of}, committed {total_s:.0f} s after the batch started; download "
        f"{wall.get(Stage.DOWNLOAD, 0.0):.1f} s (fingerprint included), claim "
        f"{wall.get(Stage.CLAIM, 0.0):.1f} s, commit {wall.get(Stage.COMMIT, 0.0):.1f} s, "
        f"waiting for its original {waited:.0f} s; no model stage ran",
        flush=True,
    )
    return 0


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=60.0, help="length of the built podcast (default 60)"
    )
    parser.add_argument(
        "--videos", type=int, default=1, help="podcasts in the batch, one seed each (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="layout seed of the first (default 0)")
    parser.add_argument("--timeout-min", type=float, default=30.0, help="give up on the video after this")
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        help="stop when a stage fails this often (its retries would run for hours; default 3)",
    )
    parser.add_argument(
        "--keep", type=Path, help="empty or new folder: keep the .m4a, its RTTM and the stack's data"
    )
    parser.add_argument(
        "--reupload",
        action="store_true",
        help="add the first podcast again, MP3 64 kbps under another id: it must end a Duplicate",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    if args.videos < 1:
        parser.error("--videos must be at least 1")
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: not empty (a kept bucket would hold the video as already done)")
    return args


def main(argv: list[str] | None = None) -> int:
    from core.service.logs import configure_logging

    args = parse_args(argv)
    configure_logging("WARNING", "console")
    root = args.keep or Path(tempfile.mkdtemp(prefix="podcast-bench-"))
    media, data = root / "media", root / "stack"
    media.mkdir(parents=True, exist_ok=True)
    try:
        videos, built = [], []
        for i, video_id in enumerate(video_ids(args.videos)):
            clock = time.perf_counter()
            m4a, made = build_podcast(args.minutes, args.seed + i, media, root, video_id)
            took = time.perf_counter() - clock
            print(
                f"podcast benchmark: built {made.seconds / 60:.2f} min in {took:.1f} s, "
                f"44.1 kHz stereo AAC {m4a.stat().st_size / 1e6:.1f} MB, {len(made.speakers)} reference "
                f"speakers, {made.music_s:.0f} s music, seed {args.seed + i}; {os.cpu_count()} cores, "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            videos.append((video_id, m4a, made.seconds))
            built.append(made)
        if args.reupload:
            first, m4a, seconds = videos[0]
            mp3 = media / f"{first}{REUPLOAD_SUFFIX}.mp3"
            ffmpeg("-i", str(m4a), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k", str(mp3))
            videos.append((f"{first}{REUPLOAD_SUFFIX}", mp3, seconds))
        try:
            runs, worker = run_through_stack(videos, data, args.timeout_min * 60, args.max_attempts)
        except (TimeoutError, StageFailing) as exc:
            where = data / "logs" / "worker.log" if args.keep else "rerun with --keep DIR to keep it"
            print(f"podcast: FAILED: {exc} (worker log: {where})")
            return 1
        return report(runs, worker, built, args.minutes)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    from core.service.exit import exit_now

    sys.stdout.reconfigure(line_buffering=True)
    exit_now(main())
