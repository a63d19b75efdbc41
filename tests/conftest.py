"""Shared fixtures: real servers on 127.0.0.1, real audio.

Audio comes from the project's samples/ and from ../shared/eval (real annotated
recordings, present in every checkout CI runs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from core.store.objects import ObjectStore
from devstack.media import join
from devstack.media_server import MediaServer
from devstack.stack import REPO_ROOT, Stack, StackConfig, log_events

SAMPLES = REPO_ROOT / "samples" / "audio"
EVAL = REPO_ROOT.parent / "shared" / "eval"


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return path


# What a joined recording of real speech must measure (tests/test_fixtures.py shows the
# check refusing the noise the old fixture built). The eval files' RMS is 0.008-0.15,
# the old fixture's 0.36; silero finds speech in 43 % of the frames of the far-field
# AMI files joined, 58 % of all eval files, 19 % of the old fixture.
SPEECH_RMS = (0.003, 0.2)
MIN_SPEECH_SHARE = 0.3


def speech_check(path: Path, expected_s: float) -> str | None:
    """Why the WAV at ``path`` is not ``expected_s`` seconds of real speech, or None."""
    import soundfile as sf

    from core.analysis.vad import speech_probabilities

    samples, rate = sf.read(str(path), dtype="float32")
    duration = len(samples) / rate
    if rate != 16_000 or samples.ndim != 1:
        return f"{path.name}: {rate} Hz, {samples.ndim} channels; 16 kHz mono expected"
    if abs(duration - expected_s) > 0.1:
        return f"{path.name}: {duration:.2f} s, its parts add up to {expected_s:.2f} s"
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    if not SPEECH_RMS[0] <= rms <= SPEECH_RMS[1]:
        return f"{path.name}: RMS {rms:.3f}, outside speech's {SPEECH_RMS}"
    share = float(np.mean(speech_probabilities(samples) >= 0.5))
    if share < MIN_SPEECH_SHARE:
        return f"{path.name}: speech in {share:.0%} of its frames, under {MIN_SPEECH_SHARE:.0%}"
    return None


def join_speech(media_dir: Path, name: str, files: list[Path]) -> tuple[str, float]:
    """Real speech joined end to end into ``media_dir/name`` (16 kHz mono WAV): a long
    recording built from annotated ones, checked to be what it claims (duration, level,
    speech share). Returns the name and its duration."""
    import soundfile as sf

    out = media_dir / name
    join(files, media_dir / f".{name}.parts", "-c:a", "pcm_s16le", str(out))  # parts: 16 kHz mono already
    expected = sum(sf.info(str(f)).duration for f in files)
    problem = speech_check(out, expected)
    assert problem is None, f"the joined fixture is not real speech: {problem}"
    return name, sf.info(str(out)).duration


def worker_events(stack: Stack, name: str) -> list[dict]:
    """The JSON log lines (structlog events) a stack worker has written so far."""
    return log_events(stack.logs / f"{name}.log")


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    assert EVAL.is_dir(), f"evaluation audio missing: {EVAL}"
    return EVAL


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Good samples plus the bad inputs every pipeline meets sooner or later."""
    d = tmp_path_factory.mktemp("media")
    for name in ("ep03-three-voices.ogg", "ep05-radio-segment.ogg", "ep01-jingle-and-two-hosts.ogg"):
        shutil.copy(SAMPLES / name, d / name)
    (d / "not-media.mp3").write_text("<html><body>This is not audio.</body></html>\n" * 20)
    (d / "empty.wav").write_bytes(b"")
    write_wav(d / "silent.wav", np.zeros(16_000 * 5, dtype=np.float32))
    return d


# Real speech in both formats the eval set has, 11 chunks of tests.fleet.CHUNK_S (10 s):
# what a kill, a SIGTERM, a pause or an OOM needs is chunk boundaries, not length.
CHUNKED = ["pyannote_sample.wav", "pyannote_debug_dev00.wav", "falcon_test.wav", "pyannote_debug_trn08.wav"]


@pytest.fixture(scope="session")
def chunked_speech(media_dir) -> tuple[str, float]:
    """About two minutes of real speech: four eval recordings joined end to end."""
    return join_speech(media_dir, "chunked-speech.wav", [EVAL / "diarization" / "audio" / f for f in CHUNKED])


@pytest.fixture(scope="session")
def pyannote_model(tmp_path_factory) -> Path:
    """A pyannote pipeline directory (random weights, built here: no hub), as the GPU
    image bakes one; built once for every test that runs the pyannote backend."""
    from benchmarks.pyannote_local import build_local_pipeline

    return build_local_pipeline(tmp_path_factory.mktemp("pyannote") / "model")


@pytest.fixture(scope="session")
def media_server(media_dir):
    with MediaServer(media_dir) as server:
        yield server


# Namespaces the session's Temporal server creates at start, one per module that uses
# the shared ``stack``: more than the suite has such modules.
TENANTS = tuple(f"tests-{n:02d}" for n in range(48))
_free_tenants = list(TENANTS)


@pytest.fixture(scope="session")
def servers(tmp_path_factory, media_dir):
    """One Temporal dev server and one storage server for the session (for each xdist
    worker): starting them per module cost more than the tests that used them."""
    data = tmp_path_factory.mktemp("servers")
    stack = Stack(StackConfig.ephemeral(data, media_dir, namespaces=TENANTS)).start(worker=False)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def stack(servers, request, tmp_path_factory):
    """The session's servers for this module's tests: a Temporal namespace, a bucket and
    a logs folder of its own (Stack.tenant), so its video and batch ids and its workers'
    logs never meet another module's. Tests that stop a server use ``own_stack``."""
    namespace = _free_tenants.pop(0)
    tenant = servers.tenant(namespace, tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    ObjectStore(tenant.settings()).ensure_bucket()
    yield tenant
    tenant.stop()


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory, media_dir):
    """Servers of its own (Temporal, storage, media), for the tests that stop one."""
    stack = Stack(StackConfig.ephemeral(tmp_path_factory.mktemp("own-stack"), media_dir))
    stack.start(worker=False)
    ObjectStore(stack.settings()).ensure_bucket()
    yield stack
    stack.stop()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    import os
    import sys

    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def temporal_workflow(stack, command: str, workflow_id: str, *flags: str) -> subprocess.CompletedProcess:
    """``temporal workflow COMMAND`` on one workflow of ``stack``, as an operator runs it."""
    from devstack.stack import temporal_cli

    args = ["workflow", command, "--address", stack.temporal_address, "--namespace", stack.config.namespace]
    args += ["--workflow-id", workflow_id, *flags]
    done = subprocess.run([temporal_cli(), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def status_query(stack, workflow_id: str) -> dict:
    """A workflow's ``status`` query answer, read back with the temporal CLI."""
    query = temporal_workflow(stack, "query", workflow_id, "--name", "status", "--output", "json")
    answer = json.loads(query.stdout)
    return answer["queryResult"][0] if "queryResult" in answer else answer


def start_cli(
    csv: str | Path, batch_id: str, *flags: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m starter start --csv CSV --batch-id ID FLAGS``, as an operator types it."""
    return run_cli(
        "-m", "starter", "start", "--csv", str(csv), "--batch-id", batch_id, *flags, env=env, timeout=timeout
    )


_SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape_metrics(address: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples a Prometheus /metrics endpoint serves: (name, labels, value)."""
    body = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    samples = []
    for line in body.splitlines():
        found = _SAMPLE.match(line)
        if found and not line.startswith("#"):
            name, labels, value = found.groups()
            samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples


def metric_total(samples, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    return sum(v for n, got, v in samples if n == name and labels.items() <= got.items())


# The Temporal SDK's native core can abort the interpreter during finalization
# ("PyGILState_Release ... must be current"), which would turn a green run into exit
# code -6. Once pytest has reported, leave without finalizing (see core/service/exit.py). Until
# pytest reports a status, the status is a failure: nothing that stops the run early
# (a configure error, a crash before the session ends) can leave through here as 0.
_exit_status = {"code": 1}

# The files that take longest, longest first: pytest-xdist hands out whole files in
# collection order (--no-loadscope-reorder), so these start first and the short files
# fill the gaps at the end, instead of a long file starting last on a busy process.
# Only the order of the run depends on this list, never a result.
LONGEST_FIRST = (
    "test_exactly_once.py",
    "test_resilience.py",
    "test_chaos.py",
    "test_export.py",
    "test_batches.py",
    "test_source_breaker.py",
    "test_benchmark_tools.py",
    "test_pipeline.py",
    "test_long_audio.py",
    "test_gpu_check.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept within


def pytest_sessionstart(session):
    """The suite measures on ../shared/eval: without it, it stops here and says so,
    instead of skipping what needs it."""
    if not EVAL.is_dir():
        raise pytest.UsageError(
            f"evaluation audio missing: {EVAL} (the shared eval folder beside the checkout); "
            "the suite's quality tests need it"
        )


def pytest_sessionfinish(session, exitstatus):
    _exit_status["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    from core.service.exit import exit_now

    exit_now(_exit_status["code"])
