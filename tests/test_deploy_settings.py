"""Names agree between the code, the docs and the deploy files: every setting the code
reads is documented in .env.example and the README, and only real ones.
"""

from __future__ import annotations

import re

import pytest

from devstack.stack import REPO_ROOT
from tests.conftest import run_cli
from tests.deploy_files import CODE_NAMES, ENV_EXAMPLE, NAME, documented_in_env_example, settings_from


def test_the_code_reads_what_the_brief_says():
    assert "PIPELINE_FAULT_OOM_ABOVE_BATCH" in CODE_NAMES, "the os.environ scan found nothing"
    assert {
        "HF_TOKEN",
        "PIPELINE_HF_TOKEN",
        "PIPELINE_TEMPORAL_ADDRESS",
        "PIPELINE_GRACEFUL_SHUTDOWN_S",
    } <= CODE_NAMES


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


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("PIPELINE_EVICTION_NOTICE", "gcp", "'none', 'azure' or 'aws'"),
        ("PIPELINE_LOG_FORMAT", "text", "'auto', 'json' or 'console'"),
        ("PIPELINE_LOG_LEVEL", "verbose", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
        ("PIPELINE_DIARIZATION_BACKEND", "nemo", "'pretrained' or 'pyannote'"),
        ("PIPELINE_MEMORY_LIMIT_MIB", "-1", "greater than 0"),
    ],
)
def test_a_bad_setting_stops_worker_and_starter_with_one_line_naming_it(variable, value, allowed):
    """Issue 30: a bad enumerated setting used to surface late (a traceback from inside
    logging, an eviction watch that silently never ran). Both entry points now refuse to
    start: exit 2 and one line with the variable, what was given and what it may be,
    before connecting anywhere."""
    for entry in (["-m", "workers"], ["-m", "starter", "status", "--batch-id", "b"]):
        result = run_cli(*entry, env={variable: value}, timeout=60)
        assert result.returncode == 2, (entry, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"invalid setting {variable}="), lines
        assert allowed in lines[0], lines


def test_log_level_is_read_in_any_case():
    from core.service.settings import Settings

    assert Settings(log_level="debug").log_level == "DEBUG"


def test_a_bad_value_is_shown_only_where_it_cannot_be_a_secret():
    from core.service.settings import SettingsError, load_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIPELINE_MEMORY_LIMIT_MIB", "lots")
        patch.setenv("PIPELINE_YTDLP_OPTIONS", '{"http_headers": {"Cookie": "SID=hunter2"}, "nope": 1}')
        with pytest.raises(SettingsError) as caught:
            load_settings()
    lines = str(caught.value).splitlines()
    assert len(lines) == 2, lines
    assert any(line.startswith("invalid setting PIPELINE_MEMORY_LIMIT_MIB='lots': ") for line in lines), lines
    assert any(line.startswith("invalid setting PIPELINE_YTDLP_OPTIONS: ") for line in lines), lines
    assert "hunter2" not in str(caught.value)
