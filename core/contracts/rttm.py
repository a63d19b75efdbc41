"""RTTM and UEM, the annotation formats a video's outputs, the exported windows and the
long-form builds are written in, and the benchmarks and tests read: writer and readers
side by side, so the two cannot drift apart.

RTTM: one ``SPEAKER <uri> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>`` line per
turn, times in seconds with millisecond precision. UEM: ``<uri> 1 <start> <end>`` per
scored region.
"""

from __future__ import annotations

from pathlib import Path

from core.contracts.video import Segment

Interval = tuple[float, float]


def rttm_text(uri: str, turns: list[Segment]) -> str:
    """The RTTM file of ``turns`` (in the order given)."""
    return "".join(
        f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in turns
    )


def read_rttm(path: Path) -> list[Segment]:
    """Speaker turns of an RTTM file (every SPEAKER line; the file is one recording)."""
    turns = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0] == "SPEAKER":
            start, dur = float(parts[3]), float(parts[4])
            if dur > 0:
                turns.append(Segment(start=start, end=start + dur, speaker=parts[7]))
    return turns


def uem_text(uri: str, regions: list[Interval]) -> str:
    return "".join(f"{uri} 1 {s:.3f} {e:.3f}\n" for s, e in regions)


def read_uem(path: Path) -> list[Interval]:
    """Scored regions of a UEM file (``uri channel start end`` lines)."""
    regions = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            regions.append((float(parts[2]), float(parts[3])))
    return regions
