"""Every bad CSV row is reported with its line number and reason; none is dropped."""

from pathlib import Path

import pytest

from starter.csv_input import CsvFormatError, RowError, ValidRow, read_videos


def _read(tmp_path: Path, text: str):
    path = tmp_path / "batch.csv"
    path.write_text(text)
    return list(read_videos(path, "b1", "auto"))


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
