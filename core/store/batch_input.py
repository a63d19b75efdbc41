"""A batch's input as stored: the validated rows, one normalised CSV line each.

The starter writes it once per batch (``_batches/{batch_id}/{name}``, see
``core/store/objects.py``) and the batch and export workflows page through it by byte offset
(``activities/batch.py``): no header, so any line boundary is a place to start a page.
The columns are those of the operator's CSV that a video needs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from core.contracts.video import VideoSpec

COLUMNS = ("video_id", "url", "duration_s")


def write_rows(specs: Iterable[VideoSpec], path: Path) -> int:
    """The rows, in order; how many were written."""
    count = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for spec in specs:
            writer.writerow(
                [spec.video_id, spec.url, "" if spec.duration_hint_s is None else spec.duration_hint_s]
            )
            count += 1
    return count


def read_row(line: bytes, batch_id: str) -> VideoSpec:
    video_id, url, duration = next(csv.reader([line.decode()]))
    return VideoSpec(
        video_id=video_id, url=url, duration_hint_s=float(duration) if duration else None, batch_id=batch_id
    )


def as_operator_csv(lines: Iterable[bytes], keep: set[str]) -> str:
    """The stored rows whose video id is in ``keep``, as a CSV the starter takes again
    (with its header): how a batch's failed videos are started once more."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line in lines:
        if line.strip():
            row = next(csv.reader([line.decode()]))
            if row[0] in keep:
                writer.writerow(row)
    return out.getvalue()
