"""The real worker (`python -m workers`) starts with the production settings of
deploy/worker.env, and with a GPU Deployment's environment, pointed at the embedded
stack, and exits 0 on SIGTERM and on an Azure eviction notice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.contracts import queues
from devstack.stack import REPO_ROOT, Stack, StackConfig, free_port
from tests.conftest import metric_total, scrape_metrics
from tests.deploy_files import (
    DOCKERFILES,
    RENDERED,
    WORKER_ENV,
    app_packages,
    by_kind,
    effective_env,
    make_certs,
    read_env_file,
    settings_from,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data = tmp_path_factory.mktemp("deploy-stack")
    stack = Stack(StackConfig.ephemeral(data, data, queue_prefix="podcast"))
    stack.start_temporal()
    stack.start_storage()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def image_app_dir(tmp_path_factory):
    """/app as the Dockerfiles lay it out: only the packages they COPY."""
    app = tmp_path_factory.mktemp("app")
    for package in app_packages(DOCKERFILES["gpu"]):
        shutil.copytree(REPO_ROOT / package, app / package, ignore=shutil.ignore_patterns("__pycache__"))
    return app


def start_worker(stack: Stack, app: Path, name: str, env: dict[str, str]) -> subprocess.Popen:
    """`python -m workers` in the image's layout, with `env` as its whole pipeline config."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIPELINE_") and k not in {"HF_TOKEN", "PYTHONPATH"}
    }
    stack.logs.mkdir(parents=True, exist_ok=True)
    log = (stack.logs / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers"],
        cwd=app,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**inherited, **env, "PYTHONPATH": str(app)},
    )
    log.close()
    return proc


def wait_for_event(stack: Stack, name: str, event: str, proc: subprocess.Popen, timeout: float = 60) -> dict:
    path = stack.logs / f"{name}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == event:
                    return record
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    tail = path.read_text(errors="replace")[-3000:] if path.exists() else ""
    raise AssertionError(f"{name}: no {event!r} (exit {proc.poll()}):\n{tail}")


@pytest.fixture(scope="module")
def baked_model(pyannote_model) -> Path:
    """What the GPU image bakes at /models/...: a pyannote pipeline. The worker loads its
    backend before it polls, and exits 2 without one."""
    return pyannote_model


def stack_overrides(stack: Stack, model: Path) -> dict[str, str]:
    """What changes between production and this test: where Temporal, storage, the
    metrics endpoint and the baked model are."""
    return {
        **stack.env(),
        "PIPELINE_TEMPORAL_TLS": "false",
        "PIPELINE_S3_REGION": "us-east-1",
        "PIPELINE_S3_ACCESS_KEY_ID": "local",
        "PIPELINE_S3_SECRET_ACCESS_KEY": "local",
        "PIPELINE_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "PIPELINE_PYANNOTE_MODEL": str(model),
    }


def served_slots(address: str, queue: str, timeout: float = 30.0) -> float:
    """The task slots the SDK reports for ``queue``: "worker.started" is logged as the
    pollers start, and the SDK publishes its slot gauge once they have, so wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        slots = metric_total(
            scrape_metrics(address), "temporal_worker_task_slots_available", task_queue=queue
        )
        if slots >= 1 or time.monotonic() > deadline:
            return slots
        time.sleep(0.5)


@pytest.mark.integration
def test_worker_starts_with_production_settings_and_drains_on_sigterm(stack, image_app_dir, baked_model):
    production = read_env_file(WORKER_ENV)
    overrides = stack_overrides(stack, baked_model)
    assert set(overrides) - {"PIPELINE_S3_ACCESS_KEY_ID", "PIPELINE_S3_SECRET_ACCESS_KEY"} <= set(production)
    proc = start_worker(
        stack, image_app_dir, "prod-worker", {**production, **overrides, "PIPELINE_WORKER_ID": "prod-worker"}
    )
    started = wait_for_event(stack, "prod-worker", "worker.started", proc)
    assert started["temporal"] == stack.temporal_address
    assert started["diarization_backend"] == production["PIPELINE_DIARIZATION_BACKEND"] == "pyannote"
    assert started["queues"] == [
        queues.gpu_queue(production["PIPELINE_TASK_QUEUE_PREFIX"], started["gpu_class"])
    ]
    assert production["PIPELINE_METRICS_ADDRESS"].endswith(":9464")
    assert served_slots(overrides["PIPELINE_METRICS_ADDRESS"], started["queues"][0]) >= 1, (
        "the SDK's worker metrics are served"
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=float(production["PIPELINE_GRACEFUL_SHUTDOWN_S"]) + 10) == 0
    wait_for_event(stack, "prod-worker", "worker.stopped", proc, timeout=1)


@pytest.mark.integration
def test_gpu_deployment_environment_starts_a_worker_that_drains_on_an_eviction_notice(
    stack, image_app_dir, baked_model
):
    docs = RENDERED["base"]
    deployment = by_kind(docs, "Deployment")["podcast-worker-t4"]
    env = effective_env(
        deployment, docs, secrets={"s3-access-key-id": "local", "s3-secret-access-key": "local"}
    )
    assert env["PIPELINE_EVICTION_NOTICE"] == "azure"
    events: list[dict] = []

    class ScheduledEvents(BaseHTTPRequestHandler):  # Azure's metadata endpoint, on loopback
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"DocumentIncarnation": len(events), "Events": events}).encode()
            self.send_response(200 if self.headers.get("Metadata") == "true" else 400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), ScheduledEvents)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metadata/scheduledevents?api-version=2020-07-01"
    try:
        proc = start_worker(
            stack,
            image_app_dir,
            "t4-pod",
            {**env, **stack_overrides(stack, baked_model), "PIPELINE_EVICTION_NOTICE_URL": url},
        )
        started = wait_for_event(stack, "t4-pod", "worker.started", proc)
        assert started["gpu_class"] == "t4" and started["queues"] == ["podcast-gpu-t4"]
        assert started["worker_id"] == "podcast-worker-t4-pod"
        time.sleep(0.5)
        assert proc.poll() is None, "no notice yet: keeps serving"
        events.append({"EventType": "Preempt", "ResourceType": "VirtualMachine", "NotBefore": "soon"})
        assert proc.wait(timeout=int(env["PIPELINE_GRACEFUL_SHUTDOWN_S"]) + 10) == 0
        wait_for_event(stack, "t4-pod", "eviction.notice", proc, timeout=1)
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > int(
            env["PIPELINE_GRACEFUL_SHUTDOWN_S"]
        )
    finally:
        server.shutdown()


@pytest.mark.integration
def test_worker_settings_connect_with_a_client_certificate_to_a_frontend_that_requires_one(stack, tmp_path):
    """The PIPELINE_TEMPORAL_TLS_* settings against a frontend that demands a client
    certificate from the CA of deploy/temporal-tls/make-certs.sh: a TLS terminator on
    loopback (the dev server has no TLS of its own) that forwards to the embedded
    Temporal. With the certificate the client connects and the server saw it; without
    one, or with the wrong server name, the handshake fails."""
    import asyncio
    import ssl

    from core.service.temporal import connect

    certs = make_certs(tmp_path / "tls")
    upstream_host, upstream_port = stack.temporal_address.rsplit(":", 1)
    presented: list[str] = []

    async def scenario() -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs / "ca.pem"))
        context.load_cert_chain(certs / "server.pem", certs / "server.key")
        context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate, no connection
        context.set_alpn_protocols(["h2"])

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            subject = dict(item[0] for item in writer.get_extra_info("peercert")["subject"])
            presented.append(subject["commonName"])
            up_reader, up_writer = await asyncio.open_connection(upstream_host, int(upstream_port))
            try:
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            except asyncio.CancelledError:  # the scenario ended with the connection open
                pass

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        tls = {
            "PIPELINE_TEMPORAL_ADDRESS": f"127.0.0.1:{server.sockets[0].getsockname()[1]}",
            "PIPELINE_TEMPORAL_TLS_SERVER_NAME": "temporal",
            "PIPELINE_TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs / "ca.pem"),
        }
        client_cert = {
            "PIPELINE_TEMPORAL_TLS_CLIENT_CERT_PATH": str(certs / "client.pem"),
            "PIPELINE_TEMPORAL_TLS_CLIENT_KEY_PATH": str(certs / "client.key"),
        }
        try:
            client = await connect(settings_from({**tls, **client_cert}), wait_s=10)
            assert await client.service_client.check_health()
            assert presented == ["podcast-client"], presented
            with pytest.raises(RuntimeError):  # no client certificate: the frontend refuses
                await connect(settings_from(tls), wait_s=2)
            started = time.monotonic()
            with pytest.raises(RuntimeError, match="(?i)certificate"):  # not made for this name: no waiting
                other_name = {**tls, **client_cert, "PIPELINE_TEMPORAL_TLS_SERVER_NAME": "other"}
                await connect(settings_from(other_name), wait_s=30)
            assert time.monotonic() - started < 10, "a certificate error is not an unready server"
            assert presented == ["podcast-client"], "only the client with a certificate got through"
        finally:
            server.close()

    asyncio.run(scenario())
