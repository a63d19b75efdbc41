"""The README's tctl/temporal table: every ``temporal`` command in it is one the installed
CLI knows, with flags its ``--help`` lists (tctl itself is not installable here; the
compose file's admin-tools image carries both)."""

from __future__ import annotations

import re
import shlex
import subprocess

from devstack.stack import REPO_ROOT, temporal_cli

ROW = re.compile(r"^\| ([^|]+) \| `(tctl [^`]+)` \| `(temporal [^`]+)` \|$", re.MULTILINE)


def table() -> list[tuple[str, str, str]]:
    return ROW.findall((REPO_ROOT / "README.md").read_text())


def test_every_temporal_command_of_the_table_is_known_to_the_cli():
    rows = table()
    assert len(rows) >= 8, rows  # the table is there and parsed
    for what, tctl, temporal in rows:
        words = shlex.split(temporal)[1:]
        path = words[: next((i for i, w in enumerate(words) if w.startswith("-")), len(words))]
        flags = {w.split("=", 1)[0] for w in words if w.startswith("--")}
        help_text = subprocess.run(
            [temporal_cli(), *path, "--help"], capture_output=True, text=True, timeout=30
        )
        assert help_text.returncode == 0, (what, help_text.stderr)
        assert f"temporal {' '.join(path)}" in help_text.stdout, (what, help_text.stdout[:300])
        for flag in flags:
            assert re.search(rf"{re.escape(flag)}\b", help_text.stdout), (what, flag)
        # the tctl column does the same thing: the same object and verb, tctl's spelling
        tctl_words = shlex.split(tctl)[1:]
        assert tctl_words[0] in ("workflow", "taskqueue", "admin"), tctl
        if tctl_words[0] == "workflow":
            assert tctl_words[1] == path[1], (tctl, temporal)


def test_the_compose_admin_tools_image_carries_both_clis():
    compose = (REPO_ROOT / "docker-compose.temporal.yml").read_text()
    images = re.findall(r"image: (temporalio/admin-tools:\S+)", compose)
    assert images and all("-tctl-" in image and "-cli-" in image for image in images), images
