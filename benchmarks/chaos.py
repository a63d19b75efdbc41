"""Chaos: one batch meets every fault a fleet meets at once, then storage is audited.

    python -m benchmarks.chaos --videos 30 --long-videos 5 --long-minutes 10 \\
        --kill-every 20 --pause-every 30 [--workers 2] [--seed 1] [--data-dir DIR] \\
        [--hostile-pct 5] [--hang]

Why: "nothing lost, nothing done twice" is a claim about all faults together. A
worker killed mid-chunk, a worker paused past its heartbeat timeout that wakes up and
goes on writing (the late writer), the Temporal server going away and coming back,
storage refusing every call for a while: each is covered by its own test, but they
meet in production, on long recordings whose stages checkpoint many chunks. So one
run combines them and then reads the storage server itself, the way a consumer of the
data would, instead of trusting what the workflows report.

One run:

- builds its media folder: the sample clips, plus ``--long-videos`` recordings of
  ``--long-minutes`` each, joined from real speech (the evaluation recordings and the
  samples), each in its own seeded order and starting offset, so no two are alike;
- starts its own embedded stack (Temporal dev server, S3-compatible store, media
  server) in ``--data-dir`` and ``--workers`` workers, with model stages checkpointing
  every ``--chunk-s`` seconds of audio and a heartbeat timeout of ``--heartbeat-s``;
- starts one batch of ``--videos`` rows (the long recordings spread among the clips);
- while it runs, every ``--kill-every`` seconds (jittered), SIGKILLs a worker that is
  in the middle of a stage and starts a replacement (only a worker that has finished
  some work since it started, so the batch moves forward however often the faults
  come); every ``--pause-every`` seconds SIGSTOPs a worker that is mid-stage for two to
  three heartbeat timeouts, then SIGCONTs it: Temporal has given its work to another
  worker meanwhile, and the woken one is a late writer. Once a quarter of the videos
  are completed it restarts the Temporal dev server (same database file, same port);
  once half are (or only two are left open, in a small batch), it stops the storage
  server for ``--outage-s`` seconds (longer than a stage's first few retries), then
  restarts it on the same port and folder;
- with ``--hostile-pct``, that share of the rows is hostile or damaged: the damaged-media
  corpus (``devstack/damaged_media.py``) and sources that answer 404 or 403, stream
  without end, send HTML or silence (``devstack/media_server.py``). Each must end typed
  (or decode, for damage ffmpeg reads through), never lost, never holding its slot;
- with ``--hang``, the first worker's first model chunk hangs in a native call that
  never returns (``PIPELINE_FAULT_HANG=model:native``) while its process lives on: the
  stage must be handed on after ``--stall-s`` without progress, and the worker must
  leave (exit 1) and be replaced;
- when the batch is done, wakes any paused worker, waits for late writes to land, and
  audits every video of the CSV:

  - lost: no committed ``metadata.json``, or its workflow did not complete;
  - duplicated: ``metadata.json`` was committed by a workflow run other than the one
    that completed the video (processed to the end twice);
  - inconsistent: ``original.wav``'s sha256 is not ``source.sha256``, a file's sha256
    is not the one ``files`` records, the committed folder holds other files,
    ``embeddings.npy`` has not one row per segment, or something is left under
    ``_work/{video}/``. Anything under ``_work/`` that belongs to no video of the
    batch counts too.

  - hostile rows: the ErrorType each ended with, against what its case allows
    ("untyped" otherwise), and the longest any of its attempts held a slot.

Prints one line per fault, the restart and outage timings, per-category details
when there are any, and one summary line::

    chaos: N completed, L lost, D duplicated, I inconsistent, K kills, P pauses, H hostile typed of T

Exits 0 iff every good video completed, every hostile one ended as its case allows, and
nothing was lost, duplicated or inconsistent.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf
from pydantic import ValidationError
from temporalio.service import RPCError

from core.contracts import search_attributes as sa
from core.contracts.ids import batch_workflow_id, video_id_of, video_workflow_id
from core.contracts.metadata import Metadata
from core.service.exit import exit_now
from core.service.temporal import connect
from core.store.objects import ObjectStore
from devstack.damaged_media import CASES as DAMAGED_CASES
from devstack.damaged_media import build_corpus
from devstack.media import join
from devstack.media_server import MediaServer
from devstack.stack import REPO_ROOT, Stack, StackConfig, log_events
from starter.batch import start_batch
from starter.status import BatchCounts, batch_counts, batch_is_running

SAMPLES = REPO_ROOT / "samples" / "audio"
EVAL_SPEECH = REPO_ROOT.parent / "shared" / "eval" / "diarization" / "audio"
BATCH = "chaos"
RESTART_AT = 0.25  # fraction of the videos completed when the Temporal server restarts
OUTAGE_AT = 0.5  # ... and when the storage outage begins
BLIND_OUTAGE_S = 5.0  # ... or this long after the restart if the batch's client sees nothing yet
POLL_TIMEOUT_S = 3.0  # one unanswered query holds the fault schedule this long at most
PAUSE_TIMEOUTS = (2.0, 3.0)  # a pause lasts this many heartbeat timeouts
MAX_HITS = 2  # faults (kills and pauses) that may land on one stage of one video
COMMITTED_FILES = {"original.wav", "embeddings.npy", "diarization.rttm", "stats.json", "metadata.json"}


@dataclass
class Options:
    videos: int
    long_videos: int
    long_minutes: float
    kill_every: float
    pause_every: float
    outage_s: float
    heartbeat_s: float
    chunk_s: float
    workers: int
    seed: int
    timeout_s: float
    data: Path
    hostile_pct: float = 0.0
    hang: bool = False
    stall_s: float = 60.0


# --------------------------------------------------------------------------- media


def build_media(media: Path, opts: Options) -> list[str]:
    """The media folder: the sample clips, then the long recordings (built once: a file
    already there is kept). Returns the names of the long recordings."""
    media.mkdir(parents=True, exist_ok=True)
    for clip in SAMPLES.glob("*.ogg"):
        if not (media / clip.name).exists():
            shutil.copy(clip, media / clip.name)
    names = [f"long-{k}-{opts.long_minutes:g}min.ogg" for k in range(opts.long_videos)]
    missing = [(k, n) for k, n in enumerate(names) if not (media / n).exists()]
    if missing:
        sources = speech_sources()
        for k, name in missing:
            build_long(sources, media / name, opts.long_minutes * 60, random.Random(opts.seed * 1000 + k))
    return names


def speech_sources() -> list[tuple[Path, float]]:
    """Every real speech recording, with its duration."""
    sources = [(path, sf.info(str(path)).duration) for path in sorted(EVAL_SPEECH.glob("*.wav"))]
    sources += [(path, sf.info(str(path)).duration) for path in sorted(SAMPLES.glob("*.ogg"))]
    if not sources:
        raise SystemExit(f"no speech recordings in {EVAL_SPEECH} or {SAMPLES}")
    return sources


def build_long(sources: list[tuple[Path, float]], out: Path, seconds: float, rng: random.Random) -> None:
    """Rounds of every source in a new seeded order, entered at a seeded offset, cut at
    ``seconds`` and encoded as Opus in Ogg (what a podcast's audio-only stream is)."""
    parts: list[Path | tuple[Path, float]] = []
    have = 0.0
    while have < seconds:
        order = sources[:]
        rng.shuffle(order)
        for path, duration in order:
            if not parts:  # the first file, entered somewhere in its first half
                offset = rng.uniform(0.0, duration / 2)
                parts.append((path, offset))
                have -= offset
            else:
                parts.append(path)
            have += duration
    partial = out.with_name(f".{out.name}")
    join(
        parts,
        out.with_name(f".{out.stem}-parts"),
        "-t",
        f"{seconds:.3f}",
        "-ac",
        "1",
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-f",
        "ogg",
        str(partial),
    )
    partial.rename(out)


Allowed = tuple[str, ...] | None  # the error types a hostile case may end with (None: or decode)


def hostile_sources(media: Path, media_url: str, hostile_url: str) -> list[tuple[str, str, Allowed]]:
    """(case, URL, the error types it may end with; None: it may also decode) of every
    hostile case: the damaged-media corpus on the plain media server, and the sources
    that misbehave on the hostile one."""
    corpus_dir = media / "damaged"
    corpus_dir.mkdir(exist_ok=True)
    build_corpus(corpus_dir, SAMPLES / "ep03-three-voices.ogg")
    (media / "not-media.mp3").write_text("<html><body>This is not audio.</body></html>\n" * 20)
    sf.write(str(media / "silent.wav"), np.zeros(16_000 * 5, dtype=np.float32), 16_000)
    misbehaving: list[tuple[str, str, Allowed]] = [
        ("404", f"{hostile_url}/status/404/gone.ogg", ("VideoUnavailable",)),
        ("403", f"{hostile_url}/status/403/private.ogg", ("VideoPrivate",)),
        ("endless stream", f"{hostile_url}/endless/ep05-radio-segment.ogg", ("TooLarge",)),
        ("HTML as .mp3", f"{media_url}/not-media.mp3", ("InvalidMedia",)),
        ("silence", f"{media_url}/silent.wav", ("SilentAudio",)),
    ]
    damaged = [(label, f"{media_url}/damaged/{name}", errors) for label, name, _, errors in DAMAGED_CASES]
    return misbehaving + damaged  # the quick ones first: a small batch meets those


@dataclass
class Row:
    video_id: str
    url: str
    case: str = ""  # a hostile row's case
    allowed: Allowed = ()  # a hostile row's allowed error types


def write_csv(path: Path, rows: list[Row]) -> None:
    path.write_text("video_id,url\n" + "".join(f"{r.video_id},{r.url}\n" for r in rows))


def batch_rows(
    media_url: str, opts: Options, long_names: list[str], hostile: list[tuple[str, str, Allowed]]
) -> list[Row]:
    """The batch: the long recordings spread evenly among the clips, and every
    ``100 / hostile_pct``-th row a hostile case (in turn)."""
    clips = sorted(p.name for p in SAMPLES.glob("*.ogg"))
    spread = {round(k * opts.videos / max(1, len(long_names))): name for k, name in enumerate(long_names)}
    every = round(100 / opts.hostile_pct) if opts.hostile_pct > 0 else 0
    rows, clip, cases = [], itertools.cycle(clips), itertools.cycle(hostile)
    for i in range(opts.videos):
        name = spread.get(i)
        if name:
            rows.append(Row(f"chaos-{i:04d}-long", f"{media_url}/{name}"))
        elif every and hostile and i % every == every // 2:
            case, url, allowed = next(cases)
            rows.append(Row(f"chaos-{i:04d}-hostile", url, case, allowed))
        else:
            rows.append(Row(f"chaos-{i:04d}", f"{media_url}/{next(clip)}"))
    return rows


# ------------------------------------------------------------------------ workers


def worker_events(path: Path) -> list[dict]:
    """The JSON log lines of one worker, none before it has logged."""
    return log_events(path) if path.exists() else []


def open_stages(events: list[dict]) -> set[tuple[str, str]]:
    """(workflow id, stage) of the attempts a worker has started and not yet ended."""
    open_attempts: Counter = Counter()
    for e in events:
        attempt = (e.get("workflow_id"), e.get("activity"), e.get("attempt"))
        if e.get("event") == "stage.started":
            open_attempts[attempt] += 1
        elif e.get("event") in {"stage.done", "stage.failed", "stage.cancelled"}:
            open_attempts[attempt] -= 1
    return {(workflow, stage) for (workflow, stage, _), n in open_attempts.items() if n > 0}


def has_worked(events: list[dict]) -> bool:
    return any(e.get("event") in {"chunk.computed", "stage.done"} for e in events)


@dataclass
class Fleet:
    """The worker processes: killed, paused, resumed and replaced by name."""

    stack: Stack
    env: dict[str, str]
    rng: random.Random
    first_env: dict[str, str] = field(default_factory=dict)  # the very first worker's faults
    spared: set[str] = field(default_factory=set)  # never killed nor paused
    live: list[str] = field(default_factory=list)
    paused: dict[str, float] = field(default_factory=dict)  # name -> when to SIGCONT
    kills: int = 0
    pauses: int = 0
    exited: list[str] = field(default_factory=list)
    hits: Counter = field(default_factory=Counter)  # (workflow id, stage) -> faults that hit it
    _generation: itertools.count = field(default_factory=itertools.count)

    def start(self, slot: int) -> str:
        generation = next(self._generation)
        name = f"chaos-w{slot}-g{generation}"
        self.stack.start_worker(name, **self.env, **(self.first_env if generation == 0 else {}))
        if generation == 0 and self.first_env:
            self.spared.add(name)  # its own fault (the hang) must land: no kill or pause before
        self.live.append(name)
        return name

    def victim(self, worked: bool = False) -> tuple[str, set] | None:
        """A running (not paused) worker in the middle of a stage, and its open stages.

        Only a stage hit fewer than ``MAX_HITS`` times: Temporal doubles the wait
        before each retry of a stage (up to minutes), so faults that kept landing on
        the one stage still running would stretch the run, not test anything new.
        ``worked``: only a worker that has finished a chunk or a stage since it
        started, so however often workers are killed, each replacement moves the
        batch forward before its turn comes."""
        fit = []
        for name in self.live:
            events = worker_events(self.stack.logs / f"{name}.log")
            stages = open_stages(events)
            if (
                name not in self.paused
                and name not in self.spared
                and stages
                and all(self.hits[s] < MAX_HITS for s in stages)
                and (not worked or has_worked(events))
            ):
                fit.append((name, stages))
        return self.rng.choice(fit) if fit else None

    def kill(self) -> str | None:
        chosen = self.victim(worked=True)
        if chosen is None:
            return None
        victim, stages = chosen
        proc = self.stack.procs.pop(victim)
        proc.kill()
        proc.wait()
        self.live.remove(victim)
        self.hits.update(stages)
        self.kills += 1
        return f"{victim} (SIGKILL) in {describe(stages)}, replaced by {self.start(slot_of(victim))}"

    def pause(self, heartbeat_s: float) -> str | None:
        chosen = self.victim() if len(self.live) - len(self.paused) >= 2 else None  # keep one running
        if chosen is None:
            return None
        victim, stages = chosen
        seconds = heartbeat_s * self.rng.uniform(*PAUSE_TIMEOUTS)
        os.kill(self.stack.procs[victim].pid, signal.SIGSTOP)
        self.paused[victim] = time.monotonic() + seconds
        self.hits.update(stages)
        self.pauses += 1
        return f"{victim} (SIGSTOP for {seconds:.0f} s) in {describe(stages)}"

    def working(self) -> bool:
        """Whether a running worker is in the middle of a stage (a server fault then
        meets work in flight)."""
        running = [w for w in self.live if w not in self.paused]
        return any(open_stages(worker_events(self.stack.logs / f"{w}.log")) for w in running)

    def resume_due(self, everyone: bool = False) -> list[str]:
        woken = [w for w, at in self.paused.items() if everyone or time.monotonic() >= at]
        for name in woken:
            os.kill(self.stack.procs[name].pid, signal.SIGCONT)
            del self.paused[name]
        return woken

    def replace_exited(self) -> list[str]:
        """Workers that exited on their own: noted and replaced. Only one stuck for good
        (the injected hang) should, saying why (``worker.unhealthy``)."""
        gone = [w for w in self.live if self.stack.procs[w].poll() is not None]
        for name in gone:
            code = self.stack.procs.pop(name).returncode
            unhealthy = [
                e
                for e in worker_events(self.stack.logs / f"{name}.log")
                if e.get("event") == "worker.unhealthy"
            ]
            why = f" (unhealthy: {unhealthy[0]['reason']})" if unhealthy else ""
            self.exited.append(f"{name} exited with {code}{why}")
            self.live.remove(name)
            self.start(slot_of(name))
        return gone

    def log_paths(self) -> list[Path]:
        return sorted(self.stack.logs.glob("chaos-w*.log"))


def describe(stages: set[tuple[str, str]]) -> str:
    return ", ".join(f"{video_id_of(workflow)} {stage}" for workflow, stage in sorted(stages))


def slot_of(name: str) -> int:
    return int(name.split("-")[1].removeprefix("w"))


# ------------------------------------------------------------------ server faults


@dataclass
class ServerFaults:
    """The Temporal restart and the storage outage, each once, mid-batch."""

    stack: Stack
    restart_stopped: float | None = None
    restart_listening: float | None = None
    restart_answering: float | None = None
    restart_completed: int = 0
    outage_began: float | None = None
    outage_ended: float | None = None
    outage_completed: int = 0

    def restart_temporal(self, completed: int) -> None:
        self.restart_completed = completed
        self.restart_stopped = time.monotonic()
        self.stack.stop_process("temporal")
        self.stack.start_temporal()
        self.restart_listening = time.monotonic()

    def answered(self) -> None:
        """The batch's client got an answer: the first since the restart is timed."""
        if self.restart_stopped is not None and self.restart_answering is None:
            self.restart_answering = time.monotonic()

    def blind_since_restart(self) -> float:
        """Seconds since the restart with no answer to the batch's client yet (0: none)."""
        if self.restart_stopped is None or self.restart_answering is not None:
            return 0.0
        return time.monotonic() - self.restart_stopped

    def begin_outage(self, completed: int) -> None:
        self.outage_completed = completed
        self.outage_began = time.monotonic()
        self.stack.stop_process("storage")

    def end_outage(self) -> None:
        self.stack.start_storage()
        self.outage_ended = time.monotonic()

    def in_outage(self) -> bool:
        return self.outage_began is not None and self.outage_ended is None

    def lines(self, started: float, retried: int, failed: int) -> list[str]:
        """The timings; ``retried``/``failed``: storage calls the workers retried in
        place during the outage, stage attempts that failed StorageUnavailable."""
        out = []
        if self.restart_stopped is None:
            out.append("temporal restart: not done (the batch finished first)")
        else:
            stopped = self.restart_stopped
            answering = self.restart_answering - stopped if self.restart_answering else float("nan")
            out.append(
                f"temporal restart at {stopped - started:.0f} s ({self.restart_completed} completed): "
                f"listening again after {self.restart_listening - stopped:.1f} s, "
                f"the batch's client answered again after {answering:.1f} s"
            )
        if self.outage_began is None:
            out.append("storage outage: not done (the batch finished first)")
        else:
            out.append(
                f"storage outage at {self.outage_began - started:.0f} s ({self.outage_completed} completed): "
                f"down {self.outage_ended - self.outage_began:.0f} s; "
                f"workers retried {retried} storage calls through it; "
                f"{failed} stage attempts failed StorageUnavailable and were retried"
            )
        return out


# ------------------------------------------------------------------------- audit


@dataclass
class Audit:
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    hostile_typed: list[str] = field(default_factory=list)  # case: how it ended
    untyped: list[str] = field(default_factory=list)


async def audit_hostile(client, rows: list[Row], result: Audit) -> None:
    """Each hostile row's workflow ended as its case allows: failed with one of its
    error types, or (damage ffmpeg reads through) completed."""
    for row in rows:
        try:
            description = await client.get_workflow_handle(video_workflow_id(row.video_id)).describe()
        except RPCError as error:
            result.untyped.append(f"{row.video_id} ({row.case}): not found ({error.status.name})")
            continue
        status = description.status.name if description.status else "unknown"
        error_type = description.typed_search_attributes.get(sa.ERROR_TYPE)
        ended = f"{row.video_id} ({row.case}): {status}{f' {error_type}' if error_type else ''}"
        allowed = status == "FAILED" and error_type in (row.allowed or ())
        allowed = allowed or (status == "COMPLETED" and row.allowed is None)
        (result.hostile_typed if allowed else result.untyped).append(ended)


async def audit(client, store: ObjectStore, rows: list[Row]) -> Audit:
    """Check every video against the storage server and the workflow that completed it."""
    result = Audit()
    leftovers = work_leftovers(store)
    await audit_hostile(client, [r for r in rows if r.case], result)
    for row in rows:
        video_id = row.video_id
        if row.case:  # a hostile row: its own audit; a decoded one is checked like any other
            if row.allowed is not None or store.get_json_or_none(store.keys(video_id).metadata) is None:
                leftovers.pop(video_id, None)
                continue
        keys = store.keys(video_id)
        metadata = store.get_json_or_none(keys.metadata)
        try:
            description = await client.get_workflow_handle(video_workflow_id(video_id)).describe()
            status = description.status.name if description.status else "unknown"
        except RPCError as error:
            status = f"not found ({error.status.name})"
        if metadata is None or status != "COMPLETED":
            what = "no metadata.json" if metadata is None else "metadata.json"
            result.lost.append(f"{video_id}: {what}, workflow {status}")
            leftovers.pop(video_id, None)  # an unfinished video keeps its work for a retry
            continue
        result.completed += 1
        problems = []
        try:
            committed_by = Metadata.model_validate(metadata).committed_run_id
        except ValidationError as error:
            committed_by = None
            problems.append(f"metadata.json is no valid commit marker: {str(error)[:200]}")
        if committed_by != description.run_id:
            result.duplicated.append(
                f"{video_id}: committed by run {committed_by}, completed by run {description.run_id}"
            )
        problems += consistency_problems(store, video_id, metadata) + leftovers.pop(video_id, [])
        if problems:
            result.inconsistent.append(f"{video_id}: " + "; ".join(problems))
    result.inconsistent += [f"{video} (not in the batch): " + "; ".join(p) for video, p in leftovers.items()]
    return result


def consistency_problems(store: ObjectStore, video_id: str, metadata: dict) -> list[str]:
    """What a committed video's files say against its metadata.json, read as stored (a
    dict, not core.contracts.metadata.Metadata): the audit checks the bytes, whatever their shape."""
    keys = store.keys(video_id)
    recorded = metadata.get("files", {})
    moved = metadata.get("file_keys", {})  # files a run committed under its own keys

    def key_of(name: str) -> str:
        return moved.get(name) or f"{keys.root}{name}"

    problems = []
    source = metadata["source"]["sha256"]
    if (original := sha256_of(store, key_of("original.wav"))) != source:
        problems.append(f"original.wav sha256 {original[:12]} is not source.sha256 {source[:12]}")
    for name, sha in recorded.items():
        if (actual := sha256_of(store, key_of(name))) != sha:
            problems.append(f"{name} sha256 {actual[:12]} is not the recorded {sha[:12]}")
    if set(recorded) | {"metadata.json"} != COMMITTED_FILES:
        problems.append(f"metadata.json names {sorted(recorded)}")
    present = {k.removeprefix(keys.root) for k in store.list_keys(keys.root)}
    # the usual names (one a run moved may hold another run's orphan), and the moved keys
    allowed = COMMITTED_FILES | {key.removeprefix(keys.root) for key in moved.values()}
    if present - allowed:
        problems.append(f"the committed folder holds files no commit names: {sorted(present - allowed)}")
    if "embeddings.npy" in recorded:
        rows = np.load(io.BytesIO(store.get_bytes(key_of("embeddings.npy")))).shape[0]
        if rows != len(metadata["segments"]):
            problems.append(f"embeddings.npy has {rows} rows for {len(metadata['segments'])} segments")
    return problems


def sha256_of(store: ObjectStore, key: str) -> str:
    try:
        return store.sha256(key)[0]
    except KeyError:
        return "missing"


def work_leftovers(store: ObjectStore) -> dict[str, list[str]]:
    """Everything under ``_work/``, by video: nothing should be left once videos commit."""
    by_video: dict[str, list[str]] = {}
    for key in store.list_keys(f"{store.prefix}_work/"):
        by_video.setdefault(key.removeprefix(f"{store.prefix}_work/").split("/", 1)[0], []).append(key)
    return {v: [f"{len(k)} keys left under _work/{v}/, e.g. {k[0]}"] for v, k in by_video.items()}


# --------------------------------------------------------------------------- run


class Batch:
    """The batch as the benchmark sees it: polled through a client that reconnects
    after the Temporal restart."""

    def __init__(self, settings, videos: int):
        self.settings = settings
        self.videos = videos
        self.client = None

    async def poll(self) -> tuple[BatchCounts, bool] | None:
        """(counts, finished), or None while Temporal does not answer."""
        try:
            if self.client is None:
                self.client = await connect(self.settings, wait_s=POLL_TIMEOUT_S)
            counts = await asyncio.wait_for(batch_counts(self.client, BATCH), POLL_TIMEOUT_S)
            finished = counts.total >= self.videos and counts.open == 0
            if finished:
                finished = not await asyncio.wait_for(
                    batch_is_running(self.client, batch_workflow_id(BATCH)), POLL_TIMEOUT_S
                )
            return counts, finished
        except Exception:  # the server is restarting: ask again next time
            self.client = None
            return None


async def run(opts: Options) -> int:
    rng = random.Random(opts.seed)
    long_names = build_media(opts.data / "media", opts)
    stack = Stack(StackConfig.ephemeral(opts.data, opts.data / "media"))
    stack.start(worker=False)
    env = {
        "PIPELINE_CHUNK_S": f"{opts.chunk_s:g}",
        "PIPELINE_STALL_S": f"{opts.stall_s:g}",
        "PIPELINE_MAX_DOWNLOAD_MB": "64",  # an endless stream is cut at 64 MiB, not 4 GiB
    }
    fleet = Fleet(stack, env, rng, first_env={"PIPELINE_FAULT_HANG": "model:native"} if opts.hang else {})
    servers = ServerFaults(stack)
    hostile_server = MediaServer(opts.data / "media").__enter__()
    try:
        for slot in range(opts.workers):
            fleet.start(slot)
        hostile = (
            hostile_sources(opts.data / "media", stack.media_url, hostile_server.url)
            if opts.hostile_pct
            else []
        )
        rows = batch_rows(stack.media_url, opts, long_names, hostile)
        write_csv(opts.data / "chaos.csv", rows)
        settings = stack.settings(heartbeat_timeout_s=opts.heartbeat_s)
        store = ObjectStore(settings)
        store.ensure_bucket()
        batch = Batch(settings, opts.videos)
        batch.client = await connect(settings)
        report = await start_batch(batch.client, settings, opts.data / "chaos.csv", BATCH)
        assert report.submitted and report.valid == opts.videos, report
        say(
            f"started a batch of {opts.videos} videos ({len(long_names)} of {opts.long_minutes:g} min, "
            f"{sum(1 for r in rows if r.case)} hostile){', a hang injected' if opts.hang else ''} on "
            f"{opts.workers} workers, chunks of {opts.chunk_s:g} s, "
            f"heartbeat timeout {opts.heartbeat_s:g} s; "
            f"a kill every ~{opts.kill_every:g} s, a pause every ~{opts.pause_every:g} s"
        )

        started = time.monotonic()
        await drive(opts, rng, batch, fleet, servers, started)
        if servers.in_outage():  # the run timed out during it
            servers.end_outage()
        for name in fleet.resume_due(everyone=True):
            say(f"SIGCONT {name} (the batch is done)")
        await asyncio.sleep(2 * opts.heartbeat_s + 5)  # a woken attempt's last writes land, or are removed

        result = await audit(batch.client or await connect(settings), store, rows)
        return report_result(opts, result, fleet, servers, started, rows)
    finally:
        fleet.resume_due(everyone=True)
        hostile_server.__exit__(None, None, None)
        stack.stop()


async def drive(
    opts: Options, rng: random.Random, batch: Batch, fleet: Fleet, servers: ServerFaults, started: float
) -> None:
    """Inject faults until the batch is done (or the timeout)."""
    due = WorkerFaults(opts, rng)
    completed = 0
    while time.monotonic() - started < opts.timeout_s:
        tend(opts, fleet, servers)
        polled = await batch.poll()
        if polled:
            counts, finished = polled
            servers.answered()
            completed = counts.by_status.get("Completed", 0)
            if finished and not servers.in_outage():
                return
            # the batch's tail: every video started, and half of them (two at least) or fewer open
            tail = counts.total >= opts.videos and counts.open <= max(2, opts.videos // 2)
            server_fault(opts, completed, tail, fleet.working(), servers)
        elif servers.blind_since_restart() > BLIND_OUTAGE_S and servers.outage_began is None:
            # Temporal still does not answer the batch's client since the restart, while
            # the workers may be finishing the batch unseen: the outage begins now, or a
            # small batch could end before it ever happens
            say(f"storage outage begins for {opts.outage_s:g} s, Temporal's answers still awaited")
            servers.begin_outage(completed)
        due.inject(fleet, f"{completed}/{opts.videos} completed")
        await asyncio.sleep(1.0)
    say(f"timed out after {opts.timeout_s:.0f} s")


def tend(opts: Options, fleet: Fleet, servers: ServerFaults) -> None:
    """What is due whatever the batch does: wake paused workers, replace ones that
    exited on their own, end the storage outage."""
    for name in fleet.resume_due():
        say(f"SIGCONT {name}: it wakes up as a late writer")
    for name in fleet.replace_exited():
        say(f"{name} exited on its own; replaced")
    if servers.in_outage() and time.monotonic() - servers.outage_began >= opts.outage_s:
        servers.end_outage()
        say(f"storage back after {servers.outage_ended - servers.outage_began:.0f} s")


def server_fault(opts: Options, completed: int, tail: bool, working: bool, servers: ServerFaults) -> None:
    """The Temporal restart, then the storage outage, each at its milestone, each while
    the batch runs. The restart waits for a worker mid-stage. In a small batch the last
    videos can complete between two polls, leaving only the batch's closing steps (its
    manifest, the speaker index) to meet a fault: so in the batch's tail (every video
    started, half of them or fewer open, two at least: under load three videos of a
    small batch were seen to end between two polls) both begin whatever the workers do,
    together if the restart comes that late."""
    if servers.restart_stopped is None:
        if (working and completed >= milestone(opts.videos, RESTART_AT)) or tail:
            say(f"restarting the Temporal server, {completed}/{opts.videos} completed")
            servers.restart_temporal(completed)
            if tail:
                say(f"storage outage begins for {opts.outage_s:g} s, with the restart")
                servers.begin_outage(completed)
    elif (
        servers.outage_began is None
        and servers.restart_answering
        and ((working and completed >= milestone(opts.videos, OUTAGE_AT)) or tail)
    ):
        say(f"storage outage begins for {opts.outage_s:g} s, {completed}/{opts.videos} completed")
        servers.begin_outage(completed)


class WorkerFaults:
    """When the next kill and the next pause are due. The first of each is due at once,
    so it lands as soon as a worker fits, however fast the machine finishes the batch;
    later ones follow at jittered intervals. A fault that finds no fitting worker is
    tried again a second later."""

    def __init__(self, opts: Options, rng: random.Random):
        self.opts = opts
        self.rng = rng
        self.next_kill = time.monotonic()
        self.next_pause = time.monotonic()

    def _after(self, every: float) -> float:
        return time.monotonic() + every * self.rng.uniform(0.5, 1.5)

    def inject(self, fleet: Fleet, progress: str) -> None:
        if time.monotonic() >= self.next_kill and (what := fleet.kill()):
            say(f"kill {fleet.kills}: {what}, {progress}")
            self.next_kill = self._after(self.opts.kill_every)
        elif time.monotonic() >= self.next_pause and (what := fleet.pause(self.opts.heartbeat_s)):
            say(f"pause {fleet.pauses}: {what}, {progress}")
            self.next_pause = self._after(self.opts.pause_every)


def milestone(videos: int, fraction: float) -> int:
    return max(1, round(videos * fraction))


def slot_holds(logs: list[Path]) -> list[tuple[str, str, float, str]]:
    """(workflow id, stage, seconds, how it ended) of every attempt in the workers' logs:
    from ``stage.started`` to its end, or to its worker's last line if it never ended
    (killed, or stuck until its worker left)."""
    holds = []
    for path in logs:
        events = worker_events(path)
        if not events:
            continue
        last = _at(events[-1])
        open_at: dict[tuple, float] = {}
        for e in events:
            attempt = (e.get("workflow_id"), e.get("activity"), e.get("attempt"))
            if e.get("event") == "stage.started":
                open_at[attempt] = _at(e)
            elif e.get("event") in {"stage.done", "stage.failed", "stage.cancelled"} and attempt in open_at:
                ended = e.get("error_type") or e["event"].removeprefix("stage.")
                holds.append((str(attempt[0]), str(attempt[1]), _at(e) - open_at.pop(attempt), ended))
        holds += [(str(a[0]), str(a[1]), last - t, "never ended") for a, t in open_at.items()]
    return holds


def _at(event: dict) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def hold_lines(rows: list[Row], logs: list[Path]) -> list[str]:
    """The longest any attempt of each hostile case held a slot, and of stages that stalled."""
    holds = slot_holds(logs)
    case_of = {video_workflow_id(r.video_id): r.case for r in rows if r.case}
    longest: dict[str, tuple[float, str, str]] = {}
    for workflow_id, stage, seconds, ended in holds:
        case = case_of.get(workflow_id)
        if case and seconds > longest.get(case, (-1.0, "", ""))[0]:
            longest[case] = (seconds, stage, ended)
    lines = [
        f"hostile {case}: longest slot held {s:.1f} s ({stage}, {ended})"
        for case, (s, stage, ended) in sorted(longest.items())
    ]
    stalled = {
        (e.get("workflow_id"), e.get("activity"))
        for path in logs
        for e in worker_events(path)
        if e.get("event") == "stage.stalled"
    }
    for workflow_id, stage, seconds, ended in holds:
        if (workflow_id, stage) in stalled and ended in {"never ended", "Stalled"}:
            lines.append(f"stalled {video_id_of(workflow_id)} {stage}: slot held {seconds:.0f} s ({ended})")
    return lines


def report_result(
    opts: Options, result: Audit, fleet: Fleet, servers: ServerFaults, started: float, rows: list[Row]
) -> int:
    logs = fleet.log_paths()

    def count(predicate) -> int:
        return sum(1 for path in logs for e in worker_events(path) if predicate(e))

    retried = count(lambda e: e.get("event") == "storage.unavailable_retrying")
    failed = count(lambda e: e.get("error_type") == "StorageUnavailable")
    for line in servers.lines(started, retried, failed):
        print(line)
    stopped = count(lambda e: e.get("event") == "stage.cancelled")
    removed = count(lambda e: e.get("error_type") == "AttemptSuperseded")
    refused = count(lambda e: e.get("event") == "commit.marker_exists")
    print(
        f"{time.monotonic() - started:.0f} s; attempts Temporal gave up that stopped themselves: {stopped}; "
        f"late writes removed after a commit: {removed}; "
        f"refused rewrites of a committed metadata.json: {refused}"
    )
    for category in ("lost", "duplicated", "inconsistent"):
        for line in getattr(result, category):
            print(f"{category}: {line}")
    for line in fleet.exited:
        print(f"worker exit: {line}")
    for line in [*result.hostile_typed, *hold_lines(rows, logs)]:
        print(line)
    for line in result.untyped:
        print(f"untyped: {line}")
    lost, duplicated, inconsistent = len(result.lost), len(result.duplicated), len(result.inconsistent)
    hostile = sum(1 for r in rows if r.case)
    print(
        f"chaos: {result.completed} completed, {lost} lost, {duplicated} duplicated, "
        f"{inconsistent} inconsistent, {fleet.kills} kills, {fleet.pauses} pauses, "
        f"{len(result.hostile_typed)} hostile typed of {hostile}",
        flush=True,
    )
    good = sum(1 for r in rows if not r.case)
    clean = lost == duplicated == inconsistent == len(result.untyped) == 0
    return 0 if clean and result.completed >= good else 1


def say(text: str) -> None:
    """A progress line, stamped in UTC like the worker logs' timestamps."""
    print(f"[chaos {datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=30)
    parser.add_argument("--long-videos", type=int, help="long recordings among them (default videos/6, 1-5)")
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds between kills (jittered)")
    parser.add_argument("--pause-every", type=float, default=30.0, help="seconds between pauses (jittered)")
    parser.add_argument("--outage-s", type=float, default=30.0, help="how long storage is down")
    parser.add_argument("--heartbeat-s", type=float, default=5.0, help="the batch's heartbeat timeout")
    parser.add_argument("--chunk-s", type=float, default=30.0, help="PIPELINE_CHUNK_S of the workers")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--data-dir", type=Path, help="an empty folder for the stack's files, logs and media")
    parser.add_argument(
        "--hostile-pct", type=float, default=0.0, help="share of hostile or damaged rows (%%)"
    )
    parser.add_argument("--hang", action="store_true", help="the first worker's first model chunk hangs")
    parser.add_argument("--stall-s", type=float, default=60.0, help="PIPELINE_STALL_S of the workers")
    args = parser.parse_args()
    long_videos = args.long_videos if args.long_videos is not None else min(5, max(1, round(args.videos / 6)))
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        opts = Options(
            videos=args.videos,
            long_videos=min(long_videos, args.videos),
            long_minutes=args.long_minutes,
            kill_every=args.kill_every,
            pause_every=args.pause_every,
            outage_s=args.outage_s,
            heartbeat_s=args.heartbeat_s,
            chunk_s=args.chunk_s,
            workers=args.workers,
            seed=args.seed,
            timeout_s=args.timeout,
            data=args.data_dir or Path(tmp),
            hostile_pct=args.hostile_pct,
            hang=args.hang,
            stall_s=args.stall_s,
        )
        code = asyncio.run(run(opts))
    exit_now(code)


if __name__ == "__main__":
    main()
