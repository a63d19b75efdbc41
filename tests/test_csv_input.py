"""Every bad CSV row is reported with its line number and reason; none is dropped."""

from pathlib import Path

import pytest

from starter.csv_input import CsvFormatError, RowError, ValidRow, read_videos


def _read(tmp_path: Path, text: str):
    path = tmp_path / "batch.csv"
    path.write_text(text)
    return list(read_videos(path, "b1"))


def test_good_and_bad_rows_in_file_order(tmp_path):
    rows = _read(
        tmp_path,
        "video_id,url,duration_s\n"
        "good1,http://127.0.0.1:1/a.ogg,12.5\n"
        "../escape,http://127.0.0.1:1/b.ogg,\n"
        "good2,ftp://nope/c.ogg,\n"
        "good1,http://127.0.0.1:1/again.ogg,\n"
        "\n"
        "good3,http://127.0.0.1:1/d.ogg,abc\n"
        "good4,http://127.0.0.1:1/e.ogg,3,extra\n"
        "good5,https://example.org/watch?v=x,\n",
    )
    valid = [r for r in rows if isinstance(r, ValidRow)]
    errors = {r.line: r for r in rows if isinstance(r, RowError)}
    assert [r.spec.video_id for r in valid] == ["good1", "good5"]
    assert valid[0].spec.duration_hint_s == 12.5 and valid[0].spec.batch_id == "b1"
    assert sorted(errors) == [3, 4, 5, 7, 8]
    assert "video_id" in errors[3].reason
    assert "url" in errors[4].reason
    assert "duplicate" in errors[5].reason and "line 2" in errors[5].reason
    assert "duration_s" in errors[7].reason
    assert "more cells" in errors[8].reason
    assert str(errors[3]).startswith("line 3 (../escape):")


def test_header_without_required_columns_is_a_file_error(tmp_path):
    with pytest.raises(CsvFormatError, match="url"):
        _read(tmp_path, "video_id,link\nabc,http://x/y\n")


def test_missing_cells_are_reported(tmp_path):
    rows = _read(tmp_path, "video_id,url\nonly_id\n")
    assert len(rows) == 1 and isinstance(rows[0], RowError) and rows[0].line == 2


def test_bad_bytes_and_unparseable_rows_cost_only_their_row(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_bytes(
        b"video_id,url\n"
        b"ok1,http://127.0.0.1:1/a.ogg\n"
        b"caf\xe9,http://127.0.0.1:1/latin1.ogg\n"  # a Latin-1 row in a UTF-8 file
        b"huge," + b"x" * 200_000 + b"\n"  # beyond the csv module's field limit
        b"ok2,http://127.0.0.1:1/b.ogg\n"
    )
    rows = list(read_videos(path, "b1"))
    assert [r.spec.video_id for r in rows if isinstance(r, ValidRow)] == ["ok1", "ok2"]
    errors = {r.line: r for r in rows if isinstance(r, RowError)}
    assert sorted(errors) == [3, 4]
    assert "not UTF-8" in errors[3].reason and errors[3].video_id == "caf?"
    assert "unreadable CSV row" in errors[4].reason and "field limit" in errors[4].reason


def test_binary_garbage_is_a_file_error(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CsvFormatError, match="header must name|not a CSV"):
        list(read_videos(path, "b1"))


def test_starter_rejects_a_bad_csv_before_reaching_for_temporal(tmp_path):
    from devstack.stack import free_port
    from tests.conftest import run_cli

    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    nowhere = {"PIPELINE_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}  # nothing listens there
    for path, message in [
        (garbage, "header must name video_id, url"),
        (tmp_path / "absent.csv", "no such file"),
    ]:
        result = run_cli(
            "-m", "starter", "start", "--csv", str(path), "--batch-id", "b1", env=nowhere, timeout=60
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "temporal" not in result.stderr.lower(), "no connection was attempted"


def test_a_url_past_the_cap_is_an_invalid_row_with_its_line(tmp_path):
    """Batch hazard (issue 12): 600 signed URLs of a few KB pushed a page of rows past
    Temporal's payload limit. URLs are capped (core.contracts.video.MAX_URL_LENGTH); a longer one
    is reported with its line like any other bad row, and the rows around it go on."""
    from core.contracts.video import MAX_URL_LENGTH

    at_cap = "https://example.org/a.m4a?sig=" + "s" * (MAX_URL_LENGTH - 30)
    rows = _read(tmp_path, f"video_id,url\nok1,{at_cap}\ntoo-long,{at_cap}x\nok2,http://127.0.0.1:1/b.ogg\n")
    assert len(at_cap) == MAX_URL_LENGTH
    assert [r.spec.video_id for r in rows if isinstance(r, ValidRow)] == ["ok1", "ok2"]
    errors = [r for r in rows if isinstance(r, RowError)]
    assert [(e.line, e.video_id) for e in errors] == [(3, "too-long")]
    assert f"at most {MAX_URL_LENGTH}" in errors[0].reason and str(MAX_URL_LENGTH + 1) in errors[0].reason
