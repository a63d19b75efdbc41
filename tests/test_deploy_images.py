"""The images keep the HF token out of their layers and their code layout starts a worker;
the cloud notes are runnable commands.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.contracts.search_attributes import cli_definitions
from devstack.stack import REPO_ROOT
from tests.deploy_files import (
    CODE_NAMES,
    DEPLOY,
    DOCKERFILES,
    NAME,
    WORKER_ENV,
    app_packages,
    copied_sources,
    instructions,
    read_env_file,
)


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
                reference, _, digest = image.partition("@")
                tag = reference.rsplit(":", 1)[-1]
                assert re.search(r"\d+\.\d+", tag) and "latest" not in tag, f"{image} has no version tag"
                assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{image} is not pinned by digest"
    users = [args for op, args in steps if op == "USER"]
    assert users and re.fullmatch(r"[1-9]\d{3,}(:\d+)?", users[-1]), (
        "last USER must be a numeric non-root uid"
    )
    assert steps[-1] == ("CMD", '["python", "-m", "workers"]')
    runs = " ".join(args for op, args in steps if op == "RUN")
    # the runtime lock alone, every wheel checked against its hash: no test or check tool
    assert "pip install --require-hashes -r /tmp/requirements.lock" in runs and "ffmpeg" in runs
    copies = " ".join(args for op, args in steps if op == "COPY")
    assert "requirements.lock" in copies and "requirements-dev.lock" not in copies
    for op, args in steps:
        if op == "ENV":
            assert not set(NAME.findall(args)) - CODE_NAMES, f"ENV names the code never reads: {args}"


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_the_image_points_the_language_model_at_the_folder_it_joins(flavour):
    from core.analysis import language

    text = DOCKERFILES[flavour].read_text()
    folder = Path(re.search(r"PIPELINE_LANGUAGE_MODEL=(\S+)", text)[1])
    assert folder.name == language.WHEEL_MODEL_SHA256[:16], "the folder language.model_dir joins into"
    assert f"language.model_dir(language.WHEEL_MODEL_ID, Path('{folder.parent}'))" in text


def test_gpu_image_bakes_the_model_only_from_a_build_secret():
    steps = instructions(DOCKERFILES["gpu"])
    defaults = arg_defaults(steps)
    assert re.match(r"nvidia/cuda:12\.8\.\d+-[a-z-]+-ubuntu2[24]\.04@sha256:", defaults["CUDA_IMAGE"])
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
