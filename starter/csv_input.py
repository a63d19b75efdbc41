"""Read and validate the operator's CSV: every bad row is reported, none is dropped silently.

Columns: ``video_id``, ``url`` and optionally ``duration_s``; other columns are ignored.
The file is streamed, so a 340,000-row CSV never sits in memory as a whole.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.contracts.errors import UnsafeSource
from core.contracts.urls import redact_urls
from core.contracts.video import VideoSpec
from core.sources.safety import SourcePolicy, check_url, current_policy

REQUIRED_COLUMNS = ("video_id", "url")
UNDECODABLE = "\ufffd"  # what errors="replace" puts where a byte was not UTF-8


class CsvFormatError(ValueError):
    """The file as a whole cannot be read (missing header columns, not a CSV)."""


@dataclass(frozen=True)
class RowError:
    line: int
    video_id: str
    reason: str

    def __str__(self) -> str:
        who = f" ({self.video_id})" if self.video_id else ""
        return f"line {self.line}{who}: {self.reason}"


@dataclass(frozen=True)
class ValidRow:
    line: int
    spec: VideoSpec


def read_videos(
    path: Path, batch_id: str, policy: SourcePolicy | None = None
) -> Iterator[ValidRow | RowError]:
    """Yield each data row as a ValidRow or a RowError, in file order. A row that is not
    UTF-8 or that the csv module cannot parse (an oversized field) is a RowError too:
    one bad row out of 340,000 must not stop the other rows from starting. A URL that
    names an address the workers never fetch from (core/sources/safety.py: by its literal
    address or name; DNS is the worker's to ask) is a RowError here, not a failed video."""
    policy = policy or current_policy()
    seen: dict[str, int] = {}
    # undecodable bytes become U+FFFD, caught per row below instead of ending the read
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader, columns = _reader(handle, path)
        width = len(columns)
        at = {name: i for i, name in enumerate(columns)}  # a repeated name: its last column
        id_at, url_at, duration_at = at["video_id"], at["url"], at.get("duration_s")
        line = reader.line_num  # where the last row read ended
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the reader skips the bad line and goes on
                yield RowError(line + 1, "", f"unreadable CSV row: {exc}")
                line = reader.line_num
                continue
            line = reader.line_num
            cells = [c.strip() for c in cells] + [""] * (width - len(cells))  # short rows: empty cells
            video_id = cells[id_at]
            if len(cells) > width:
                yield RowError(line, video_id, "more cells than header columns")
                continue
            if not any(cells):
                continue  # a blank line is not a row
            if any(UNDECODABLE in c for c in cells):
                yield RowError(
                    line, video_id.replace(UNDECODABLE, "?"), "not UTF-8 text (save the CSV as UTF-8)"
                )
                continue
            duration = cells[duration_at] if duration_at is not None else ""
            try:
                spec = VideoSpec(
                    video_id=video_id,
                    url=cells[url_at],
                    duration_hint_s=float(duration) if duration else None,
                    batch_id=batch_id,
                )
            except (ValidationError, ValueError) as exc:
                yield RowError(line, video_id, redact_urls(_reason(exc)))
                continue
            try:
                check_url(spec.url, policy)
            except UnsafeSource as exc:
                yield RowError(line, video_id, f"url: {exc}")
                continue
            if video_id in seen:
                yield RowError(line, video_id, f"duplicate video_id (first on line {seen[video_id]})")
                continue
            seen[video_id] = line
            yield ValidRow(line, spec)


def check_header(path: Path) -> None:
    """Raise CsvFormatError unless ``path`` is a readable CSV whose header names the
    required columns: what can be said about a file before reaching for Temporal."""
    if not path.is_file():
        raise CsvFormatError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        _reader(handle, path)


def _reader(handle: Any, path: Path) -> tuple[Any, list[str]]:
    """A csv reader past a checked header, and the header's (stripped) column names."""
    reader = csv.reader(handle)
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        raise CsvFormatError(f"{path}: not a CSV file ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CsvFormatError(
            f"{path}: header must name {', '.join(REQUIRED_COLUMNS)}; missing {', '.join(missing)}"
        )
    return reader, header


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
    return f"duration_s: {exc}"
