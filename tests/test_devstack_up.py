"""``python -m devstack up``, a CSV of the user's own and ``down``, as an operator runs
them: real processes (Temporal, localbucket, the media server, the worker) left running
in the background between commands, and the starter command ``up`` prints run as is."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from core.service.settings import Settings
from devstack.background import Part, alive, cmdline, read_state, starter_env
from devstack.stack import REPO_ROOT, Stack, StackConfig
from tests.conftest import run_cli

SAMPLE = REPO_ROOT / "samples" / "audio" / "ep05-radio-segment.ogg"


@pytest.mark.integration
def test_up_a_csv_of_ones_own_and_down(tmp_path):
    media, data = tmp_path / "my-audio", tmp_path / "data"
    media.mkdir()
    shutil.copy(SAMPLE, media / "my-episode.ogg")
    up = run_cli(
        "-m", "devstack", "up", "--media", str(media), "--data-dir", str(data), "--free-ports", timeout=240
    )
    state = read_state(data)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert state is not None and set(state.parts) == {"temporal", "storage", "media", "worker"}
        assert all(alive(part) for part in state.parts.values())  # `up` has exited; they run on
        out = up.stdout
        assert f"serves {media}" in out and state.temporal_address in out, out
        command = next(line.strip() for line in out.splitlines() if " -m starter start " in line)
        row = next(line for line in out.splitlines() if "a row for a file of the served folder" in line)
        assert row.endswith(f"{state.media_url}/my-episode.ogg"), row

        status = run_cli("-m", "devstack", "status", "--data-dir", str(data))
        assert status.returncode == 0 and "up" in status.stdout.splitlines()[0], status.stdout

        my_csv = tmp_path / "my.csv"
        my_csv.write_text(f"video_id,url\nmine-01,{state.media_url}/my-episode.ogg\n")
        words = shlex.split(command.replace("my.csv", str(my_csv)))
        env = dict(w.split("=", 1) for w in words if "=" in w and w.startswith("PIPELINE_"))
        argv = [w for w in words if not w.startswith("PIPELINE_")]
        assert argv[0] == ".venv/bin/python" or Path(argv[0]).name.startswith("python"), command
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
        started = subprocess.run(
            [str(REPO_ROOT / argv[0]) if not Path(argv[0]).is_absolute() else argv[0], *argv[1:]],
            cwd=REPO_ROOT,
            env={**clean, **env},  # only what the printed command sets
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert "mine-01" in started.stdout and "completed" in started.stdout, started.stdout
    finally:
        down = run_cli("-m", "devstack", "down", "--data-dir", str(data), timeout=120)
    assert down.returncode == 0 and down.stdout.startswith("stopped: worker"), down.stdout + down.stderr
    assert not any(alive(part) for part in state.parts.values())
    assert read_state(data) is None
    gone = run_cli("-m", "devstack", "status", "--data-dir", str(data))
    assert gone.returncode == 3, gone.stdout


def test_the_starter_needs_no_environment_at_the_default_ports(tmp_path):
    """At the stack's default ports the printed command sets nothing: the settings'
    defaults are this stack's addresses (a change to either breaks this)."""
    stack = Stack(StackConfig(data_dir=tmp_path, media_dir=tmp_path))
    assert starter_env(stack) == {}
    settings = Settings()
    assert settings.temporal_address == stack.temporal_address and settings.s3_endpoint_url == stack.s3_url
    moved = Stack(StackConfig.ephemeral(tmp_path, tmp_path))
    assert starter_env(moved) == {
        "PIPELINE_TEMPORAL_ADDRESS": moved.temporal_address,
        "PIPELINE_S3_ENDPOINT_URL": moved.s3_url,
    }


def test_a_pid_now_held_by_another_program_is_not_taken_for_the_stack(tmp_path):
    """``down`` stops a recorded pid only while its command line is the recorded one."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        for _ in range(100):  # until the child has exec'd
            if cmdline(sleeper.pid) == ["sleep", "30"]:
                break
            time.sleep(0.02)
        assert alive(Part(pid=sleeper.pid, cmdline=["sleep", "30"], port=None))
        assert not alive(Part(pid=sleeper.pid, cmdline=[".venv/bin/python", "-m", "workers"], port=None))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not alive(Part(pid=sleeper.pid, cmdline=["sleep", "30"], port=None))  # gone
