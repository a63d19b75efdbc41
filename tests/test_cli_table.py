"""The README's tctl/temporal table: every ``temporal`` command in it is one the installed
CLI knows, with flags its ``--help`` lists (tctl itself is not installable here, and
Temporal's current admin-tools image, the compose file's, carries only ``temporal``);
the same for the ``temporal`` commands the compose file runs and shows."""

from __future__ import annotations

import re
import shlex
import subprocess

from devstack.stack import REPO_ROOT, temporal_cli

ROW = re.compile(r"^\| ([^|]+) \| `(tctl [^`]+)` \| `(temporal [^`]+)` \|$", re.MULTILINE)


def table() -> list[tuple[str, str, str]]:
    return ROW.findall((REPO_ROOT / "README.md").read_text())


def global_options() -> str:
    """`temporal options`: the global and connection flags (--namespace, --address, the
    TLS ones), which no command's own ``--help`` lists."""
    out = subprocess.run([temporal_cli(), "options"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--namespace" in out.stdout, out.stderr
    return out.stdout


def assert_known_to_the_cli(command: str, what: str) -> list[str]:
    """``command`` ("temporal <path> --flags ...") names a command of the installed CLI
    and only flags its ``--help`` (or `temporal options`) lists; returns the command's path."""
    words = shlex.split(command)[1:]
    path = words[: next((i for i, w in enumerate(words) if w.startswith("-")), len(words))]
    flags = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    help_text = subprocess.run([temporal_cli(), *path, "--help"], capture_output=True, text=True, timeout=30)
    assert help_text.returncode == 0, (what, help_text.stderr)
    assert f"temporal {' '.join(path)}" in help_text.stdout, (what, help_text.stdout[:300])
    known = help_text.stdout + global_options()
    for flag in flags:
        assert re.search(rf"{re.escape(flag)}\b", known), (what, flag)
    return path


def test_every_temporal_command_of_the_table_is_known_to_the_cli():
    rows = table()
    assert len(rows) >= 8, rows  # the table is there and parsed
    for what, tctl, temporal in rows:
        path = assert_known_to_the_cli(temporal, what)
        # the tctl column does the same thing: the same object and verb, tctl's spelling
        tctl_words = shlex.split(tctl)[1:]
        assert tctl_words[0] in ("workflow", "taskqueue", "admin"), tctl
        if tctl_words[0] == "workflow":
            assert tctl_words[1] == path[1], (tctl, temporal)


COMPOSE_COMMAND = re.compile(r"\btemporal (?:operator|workflow|task-queue) [^;|&>`)\n]*")


def test_the_compose_admin_tools_image_carries_the_temporal_cli_and_the_readme_says_so():
    """Temporal's current admin-tools tags (X.Y.Z) carry the `temporal` CLI and no tctl
    (the old `-tctl-` tags did both): the compose file uses only `temporal`, with commands
    and flags the CLI knows, and the README says where tctl would come from."""
    compose = (REPO_ROOT / "docker-compose.temporal.yml").read_text()
    images = re.findall(r"image: (temporalio/admin-tools:\S+)", compose)
    assert images and all(re.fullmatch(r"temporalio/admin-tools:\d+\.\d+\.\d+", i) for i in images), images
    assert not re.search(r"^[^#]*\btctl\b", compose, flags=re.MULTILINE), "tctl is not in the image"
    commands = COMPOSE_COMMAND.findall(re.sub(r"\\\n[ #]*", " ", compose))
    shown = [c for c in commands if "workflow query" in c]
    assert shown and len(commands) >= 5, commands  # the header's example and the jobs' commands
    for command in commands:
        assert_known_to_the_cli(command.replace("$$", "$"), command)
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    assert "`admin-tools` image carries it too" in readme
    assert re.search(r"`tctl`, deprecated: neither on PyPI nor in Temporal's current images", readme)
