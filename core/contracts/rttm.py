"""RTTM and UEM, the annotation formats a video's outputs, the exported windows and the
long-form builds are written in, and the benchmarks and tests read: the writers here,
the readers pyannote.database's (the reference pyannote.metrics scores with), side by
side, so the two cannot drift apart.

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
    """Speaker turns of an RTTM file (the file is one recording), in time order, as
    pyannote.database's reader parses it (imported here: the writer stays light)."""
    from pyannote.database.util import load_rttm

    turns = []
    for annotation in load_rttm(str(path)).values():  # type: ignore[no-untyped-call]
        for segment, _, speaker in annotation.itertracks(yield_label=True):
            if segment.duration > 0:
                turns.append(Segment(start=segment.start, end=segment.end, speaker=str(speaker)))
    return sorted(turns, key=lambda t: (t.start, t.end, t.speaker))


def uem_text(uri: str, regions: list[Interval]) -> str:
    return "".join(f"{uri} 1 {s:.3f} {e:.3f}\n" for s, e in regions)


def read_uem(path: Path) -> list[Interval]:
    """Scored regions of a UEM file, in time order, as pyannote.database's reader parses it."""
    from pyannote.database.util import load_uem

    regions = load_uem(str(path))  # type: ignore[no-untyped-call]
    return sorted((seg.start, seg.end) for timeline in regions.values() for seg in timeline)
