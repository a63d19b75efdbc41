"""Read and validate the operator's CSV: every bad row is reported, none is dropped silently.

Columns: ``video_id``, ``url`` and optionally ``duration_s``; other columns are ignored.
The file is streamed, so a 340,000-row CSV never sits in memory as a whole.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from core.models import VideoSpec

REQUIRED_COLUMNS = ("video_id", "url")


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


def read_videos(path: Path, batch_id: str, gpu_class: str) -> Iterator[ValidRow | RowError]:
    """Yield each data row as a ValidRow or a RowError, in file order."""
    seen: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise CsvFormatError(f"{path}: header must name {', '.join(REQUIRED_COLUMNS)}; missing {', '.join(missing)}")
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num
            if row.get(None):  # more cells than header columns
                yield RowError(line, (row.get("video_id") or "").strip(), "more cells than header columns")
                continue
            values = {k: (v or "").strip() for k, v in row.items() if k}
            if not any(values.values()):
                continue  # a blank line is not a row
            video_id = values.get("video_id", "")
            try:
                spec = VideoSpec(
                    video_id=video_id,
                    url=values.get("url", ""),
                    duration_hint_s=float(values["duration_s"]) if values.get("duration_s") else None,
                    batch_id=batch_id,
                    gpu_class=gpu_class,
                )
            except (ValidationError, ValueError) as exc:
                yield RowError(line, video_id, _reason(exc))
                continue
            if video_id in seen:
                yield RowError(line, video_id, f"duplicate video_id (first on line {seen[video_id]})")
                continue
            seen[video_id] = line
            yield ValidRow(line, spec)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
    return f"duration_s: {exc}"
