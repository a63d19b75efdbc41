"""`make test` cannot hide a failure: the conftest's hard exit keeps pytest's status,
and is a failure when pytest never reported one. Each case runs pytest for real, in a
subprocess, with this suite's conftest loaded as a plugin."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"test_ok.py": "def test_ok():\n    assert True\n"}, 0),
        ({"test_fails.py": "def test_fails():\n    assert 1 == 2\n"}, 1),
        ({"test_broken.py": "def test_broken(:\n"}, 2),  # a collection error
        (
            {
                "conftest.py": "def pytest_configure(config):\n    raise RuntimeError('broken conftest')\n",
                "test_ok.py": "def test_ok():\n    pass\n",
            },
            None,
        ),
    ],
)
def test_the_exit_status_is_the_failure(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = run_cli(
        "-m", "pytest", "-q", "-p", "tests.conftest", "--rootdir", str(tmp_path), str(tmp_path), timeout=120
    )
    if expected is None:
        assert result.returncode != 0, result.stdout + result.stderr
    else:
        assert result.returncode == expected, result.stdout + result.stderr
