"""The yield report over a whole fleet's batch: its memory must not grow with the videos.

    python -m benchmarks.report --videos 340000 [--segments 40]

``starter report`` holds one compact row per video (what visibility says of it) and
adds each committed video's metadata to its totals as it is read, then lets it go
(``starter.report.YieldTotals``). This runs that code on synthetic committed videos,
each a metadata.json of ``--segments`` labelled turns, built one at a time as storage
would hand them over, its speakers linked to global speakers of a long-tailed
popularity, and prints wall time and the process's own peak memory (goal: <= 300 MB at
340,000 videos). Storage and visibility are not in the measurement: reads
are bounded by the report's read window (``READ_WINDOW`` metadata files in flight).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator

from core.contracts.clips import ClipPolicy
from core.contracts.metadata import Metadata
from devstack.memory import own_peak_kib
from starter.report import YieldTotals, render_png
from starter.status import VideoRow


def synthetic_metadata(index: int, segments: int, rng: random.Random) -> Metadata:
    """A committed hour-long episode: alternating turns of two to four speakers."""
    speakers = 2 + index % 3
    turn = 3600.0 / segments
    rows = []
    for i in range(segments):
        start, end = i * turn, (i + 1) * turn - 0.2
        rows.append(
            {
                "start": start,
                "end": end,
                "speaker": f"SPEAKER_{i % speakers:02d}",
                "usable": True,
                "usable_regions": [[start, end]],
                "labels": {"dnsmos_ovrl": round(rng.uniform(2.0, 3.6), 2), "snr_db": 30.0},
            }
        )
    return Metadata.model_validate(
        {
            "schema_version": 2,
            "video_id": f"v{index:07d}",
            "duration_s": 3600.0,
            "num_speakers": speakers,
            "segments": rows,
            "music": [{"start": 0.0, "end": 20.0, "probability": 0.9}],
        }
    )


HOSTS = 5_000  # recurring speakers: a long tail, a few of them in thousands of episodes
GUESTS = 1_000_000  # everyone else: most heard in one episode
HOST_SHARE = 0.4  # of the local speakers


def linked_speakers(meta: Metadata, rng: random.Random) -> dict[str, str]:
    """Its local speakers' global ids: a host (a Pareto draw over HOSTS) or a guest."""
    ids = {}
    for k in range(meta.num_speakers):
        if rng.random() < HOST_SHARE:
            person = int(rng.paretovariate(1.0)) % HOSTS
        else:
            person = HOSTS + rng.randrange(GUESTS)
        ids[f"SPEAKER_{k:02d}"] = f"spk_{person:07d}"
    return ids


def committed(videos: int, segments: int) -> Iterator[tuple[Metadata, dict, dict[str, str]]]:
    rng = random.Random(22)
    for i in range(videos):
        meta = synthetic_metadata(i, segments, rng)
        yield meta, {"gpu_class": "t4", "stage_compute_s": {"diarize": 120.0}}, linked_speakers(meta, rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=340_000)
    parser.add_argument("--segments", type=int, default=40)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = [
        VideoRow(f"v{i:07d}", "Completed", "completed", 3, 60.0, 3600.0, None) for i in range(args.videos)
    ]
    rows_mib = own_peak_kib() / 1024
    totals = YieldTotals(ClipPolicy())
    for meta, stats, speakers in committed(args.videos, args.segments):
        totals.add(meta, stats, speakers)
    report = totals.report("bench", rows, [], {"t4": 0.53})
    render_png(report)
    took = time.perf_counter() - started
    print(f"report: {args.videos} committed videos of {args.segments} segments each, in {took:.0f} s")
    print(f"  peak memory of the process: {own_peak_kib() / 1024:.0f} MB ({rows_mib:.0f} MB after the rows)")
    hours = report["hours"]
    print(f"  hours in {hours['in']:.0f}, usable {hours['usable']:.0f}, clips {report['clips']['count']}")
    spread = report["hours_per_speaker"]
    print(
        f"  global speakers {spread['speakers']}, the top 1 % hold {100 * spread['top_1pct_share']:.0f} % "
        f"of the linked usable hours; most: {spread['top'][0][1]:.0f} h"
    )


if __name__ == "__main__":
    main()
