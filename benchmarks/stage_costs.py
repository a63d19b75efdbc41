"""Per-stage compute seconds per audio minute, read from the stats.json of finished videos.

    python -m benchmarks.stage_costs [--video-ids a,b,c]      (default: every video in the bucket)

Reads the same storage the workers write (PIPELINE_S3_* settings), so it reports what
the pipeline actually spent, video by video and pooled over the audio.
"""

from __future__ import annotations

import argparse

from core.contracts.stages import Stage
from core.service.settings import Settings
from core.store.objects import ObjectStore

STAGES = (
    Stage.DOWNLOAD,
    Stage.DIARIZE,
    Stage.EMBED,
    Stage.MUSIC,
    Stage.LABELS,
)  # labels: absent from older commits


def collect(store: ObjectStore, video_ids: list[str] | None) -> list[dict]:
    if video_ids is None:
        keys = [k for k in store.list_keys(store.prefix) if k.endswith("/stats.json") and "/_work/" not in k]
    else:
        keys = [store.keys(v).stats for v in video_ids]
    return [store.get_json(k) for k in sorted(keys)]


def report(stats: list[dict]) -> str:
    header = f"{'video':<28} {'audio s':>8} " + " ".join(f"{s:>9}" for s in STAGES) + f" {'total':>8}"
    lines = ["compute seconds per audio minute", header]
    totals = {s: 0.0 for s in STAGES}
    audio = 0.0
    for st in stats:
        per_min = {s: st["compute_s_per_audio_min"].get(s) or 0.0 for s in STAGES}
        lines.append(
            f"{st['video_id']:<28} {st['audio_s']:>8.1f} "
            + " ".join(f"{per_min[s]:>9.2f}" for s in STAGES)
            + f" {sum(per_min[s] for s in STAGES):>8.2f}"
        )
        for s in STAGES:
            totals[s] += st["stage_compute_s"].get(s, 0.0)
        audio += st["audio_s"]
    if audio:
        minutes = audio / 60
        pooled = {s: totals[s] / minutes for s in STAGES}
        lines.append(
            f"{'pooled (' + str(len(stats)) + ' videos)':<28} {audio:>8.1f} "
            + " ".join(f"{pooled[s]:>9.2f}" for s in STAGES)
            + f" {sum(pooled.values()):>8.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video-ids", help="comma-separated; default: all videos in the bucket")
    args = parser.parse_args()
    store = ObjectStore(Settings())
    ids = args.video_ids.split(",") if args.video_ids else None
    print(report(collect(store, ids)))


if __name__ == "__main__":
    main()
