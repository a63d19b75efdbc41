"""Time intervals of a recording: merged, subtracted, and where speakers talk over each
other. Shared by what reads a diarization: the commit's usable stretches, the language
windows, the yield report."""

from __future__ import annotations

import bisect

from core.contracts.video import Segment

Interval = tuple[float, float]


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    merged: list[list[float]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def subtract(interval: Interval, holes: list[Interval]) -> list[Interval]:
    """Parts of ``interval`` not covered by ``holes`` (holes merged and sorted)."""
    s, e = interval
    out: list[Interval] = []
    cursor = s
    for hs, he in holes:
        if he <= cursor or hs >= e:
            continue
        if hs > cursor:
            out.append((cursor, hs))
        cursor = max(cursor, he)
    if cursor < e:
        out.append((cursor, e))
    return out


def overlaps(segments: list[Segment]) -> list[list[Interval]]:
    """Per segment, where another speaker talks during it (merged). One sweep over the
    segments by start time, each met only by those still open when it starts: six hours
    hold tens of thousands of turns, and comparing every pair would take minutes."""
    found: list[list[Interval]] = [[] for _ in segments]
    still_open: list[int] = []
    for i in sorted(range(len(segments)), key=lambda k: segments[k].start):
        me = segments[i]
        still_open = [j for j in still_open if segments[j].end > me.start]
        for j in still_open:
            other = segments[j]
            if other.speaker != me.speaker and other.start < me.end:
                shared = (max(me.start, other.start), min(me.end, other.end))
                found[i].append(shared)
                found[j].append(shared)
        still_open.append(i)
    return [merge_intervals(spans) for spans in found]


class Disjoint:
    """Sorted, disjoint intervals (music, uncertain spans), found by bisection: an hour
    holds thousands of turns to look them up for."""

    def __init__(self, intervals: list[Interval]) -> None:
        self.merged = merge_intervals(intervals)
        self.ends = [e for _, e in self.merged]

    def within(self, start: float, end: float) -> list[Interval]:
        """Those that meet [start, end), clipped to it."""
        hits = []
        for s, e in self.merged[bisect.bisect_right(self.ends, start) :]:
            if s >= end:
                break
            hits.append((max(start, s), min(end, e)))
        return hits
