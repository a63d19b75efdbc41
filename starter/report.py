"""``python -m starter report``: what a batch yielded, of what quality, at what cost.

    python -m starter report --batch-id ID [--json] [--out DIR]

Reads the batch's videos from Temporal's visibility (states, failures by type) and,
for each committed one, its ``metadata.json`` and ``stats.json``; adds the batch's
exports (their indexes). Prints a summary (or the JSON), and writes ``report.json``
and ``report.png`` to ``exports/{batch_id}/`` in the bucket (rewritten each time:
a view of the committed data, not data), and to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import zip_longest
from pathlib import Path
from typing import Any

from temporalio.client import Client

from core.analysis import language
from core.analysis.intervals import merge_intervals
from core.contracts.clips import ClipPolicy
from core.contracts.metadata import Metadata
from core.service.settings import Settings
from core.store.commit import read_metadata
from core.store.layout import STATS_JSON, batch_exports_root
from core.store.objects import ObjectStore
from core.store.speaker_lookup import SpeakerLookup
from core.training import clips
from starter.status import VideoRow, list_videos

READ_THREADS = 16
READ_WINDOW = 256  # videos read at once: what is in flight, not the batch, is held
DNSMOS_BUCKETS = [(0.0, 2.5, "<2.5"), (2.5, 3.0, "2.5-3.0"), (3.0, 3.3, "3.0-3.3"), (3.3, 9.0, ">=3.3")]
UNLABELLED = "unlabelled"  # committed before the labels stage, or too short to score
UNKNOWN_LANGUAGE = "unknown"  # no clean window heard, or the language head was unsure


def add_parser(sub: argparse._SubParsersAction, batch_id: type) -> None:
    cmd = sub.add_parser("report", help="yield report: hours in, speech, usable and exported, quality, cost")
    cmd.add_argument("--batch-id", type=batch_id, required=True)
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    cmd.add_argument("--out", type=Path, help="also write report.json and report.png into this folder")


async def cmd_report(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    report, png_key = await write_report(client, settings, args.batch_id, args.out)
    print(json.dumps(report, indent=1) if args.json else "\n".join(summary_lines(report, png_key)))
    return 0


async def write_report(
    client: Client, settings: Settings, batch_id: str, out: Path | None = None
) -> tuple[dict[str, Any], str]:
    """Build the batch's report, store its JSON and PNG (and copy them to ``out``);
    returns the report and the PNG's key. Each committed video's metadata is read,
    added to the totals and let go: memory does not grow with the batch's videos."""
    store = ObjectStore(settings)
    rows = await list_videos(client, batch_id)
    totals = YieldTotals(settings.clip_policy)
    committed = [r.video_id for r in rows if r.status == "Completed"]
    linked = SpeakerLookup(store)

    def read(video_id: str) -> tuple[Metadata | None, dict[str, Any] | None, dict[str, str]]:
        meta = read_metadata(store, video_id)
        stats = (
            store.get_json_or_none(store.keys(video_id).committed_file(meta, STATS_JSON)) if meta else None
        )
        speakers = linked.ids_of(video_id) if meta else {}
        return meta, stats, speakers

    with ThreadPoolExecutor(READ_THREADS) as pool:
        for start in range(0, len(committed), READ_WINDOW):  # a window at a time: bounded in flight
            for meta, stats, speakers in pool.map(read, committed[start : start + READ_WINDOW]):
                totals.add(meta, stats, speakers)
    root = batch_exports_root(store.prefix, batch_id)
    exports = [store.get_json(k) for k in store.list_keys(root) if k.endswith("/index.json")]
    report = totals.report(batch_id, rows, exports, settings.gpu_prices)
    body, png = json.dumps(report, indent=1).encode(), render_png(report)
    store.put_bytes(f"{root}report.json", body, "application/json")
    store.put_bytes(f"{root}report.png", png, "image/png")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_bytes(body)
        (out / "report.png").write_bytes(png)
    return report, f"{root}report.png"


def build_report(
    batch_id: str,
    rows: list[VideoRow],
    committed: Sequence[Metadata],
    stats: list[dict[str, Any]],
    exports: list[dict[str, Any]],
    prices: dict[str, float],
    clip_policy: ClipPolicy,
    speaker_ids: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """The report of one batch from what is committed (pure: unit-tested); ``speaker_ids``:
    per committed video, its linked local speakers' global ids."""
    totals = YieldTotals(clip_policy)
    for meta, speakers in zip_longest(committed, speaker_ids, fillvalue={}):
        totals.add(meta, None, speakers)
    for st in stats:
        totals.add(None, st)
    return totals.report(batch_id, rows, exports, prices)


CLIP_EDGES = [0, 3, 5, 10, 15, 20, 25, 30.01]
DNSMOS_EDGES = [1, 2, 2.5, 2.75, 3, 3.25, 3.5, 5]
MUSIC_EDGES = [0, 1, 5, 10, 25, 50, 100.01]
SPEAKER_HOUR_EDGES = [0, 0.1, 0.5, 1, 2, 5, 10, 50, 1e9]  # a global speaker's usable hours
TOP_SPEAKERS = 10


class YieldTotals:
    """What the report adds up over a batch's committed videos, one video at a time:
    sums, counts and histograms, never the videos themselves."""

    def __init__(self, clip_policy: ClipPolicy) -> None:
        self.clip_policy = clip_policy
        self.seconds_in = 0.0
        self.speech_s = 0.0
        self.usable_by_bucket: defaultdict[str, float] = defaultdict(float)
        self.dnsmos_usable_h = [0.0] * (len(DNSMOS_EDGES) - 1)  # usable hours per OVRL bin
        self.clip_counts = [0.0] * (len(CLIP_EDGES) - 1)
        self.clips = 0
        self.clip_s = 0.0
        self.speakers: Counter[int] = Counter()
        self.music_counts = [0.0] * (len(MUSIC_EDGES) - 1)
        self.compute_s: Counter[str] = Counter()
        self.usable_by_language: Counter[str] = Counter()
        self.usable_by_speaker: Counter[str] = Counter()  # per global speaker (linked videos)
        self.unlinked_usable_s = 0.0
        self.duplicates = 0  # committed as copies of an earlier video's audio: no model ran
        self.duplicate_s = 0.0
        self.shared_usable_s = 0.0  # usable turns another video's audio holds: left out of exports

    def add(
        self, meta: Metadata | None, stats: dict[str, Any] | None, speaker_ids: dict[str, str] | None = None
    ) -> None:
        if meta is not None:
            self._add_metadata(meta, speaker_ids or {})
        if stats is not None:
            self.compute_s[stats.get("gpu_class") or "cpu"] += sum(
                (stats.get("stage_compute_s") or {}).values()
            )

    def _add_metadata(self, meta: Metadata, speaker_ids: dict[str, str]) -> None:
        if meta.duplicate_of:
            self.duplicates += 1
            self.duplicate_s += meta.duration_s
            return
        self.seconds_in += meta.duration_s
        self.speech_s += _speech_s(meta)
        for row in meta.segments:
            seconds = row.usable_s
            if row.duplicate_of:  # counted where that video's audio is
                self.shared_usable_s += seconds
                continue
            ovrl = row.label("dnsmos_ovrl")
            self.usable_by_bucket[_bucket(ovrl)] += seconds
            if ovrl is not None and seconds > 0:
                _count(self.dnsmos_usable_h, DNSMOS_EDGES, ovrl, seconds / 3600)
            if seconds > 0:
                self.usable_by_language[_language(meta, row.speaker)] += seconds
                if row.speaker in speaker_ids:
                    self.usable_by_speaker[speaker_ids[row.speaker]] += seconds
                else:
                    self.unlinked_usable_s += seconds
        for clip in clips.cut_clips(meta, None, self.clip_policy):
            _count(self.clip_counts, CLIP_EDGES, clip.duration)
            self.clips += 1
            self.clip_s += clip.duration
        self.speakers[meta.num_speakers] += 1
        _count(self.music_counts, MUSIC_EDGES, _music_share(meta))

    def report(
        self, batch_id: str, rows: list[VideoRow], exports: list[dict[str, Any]], prices: dict[str, float]
    ) -> dict[str, Any]:
        cost = sum(seconds / 3600 * prices.get(cls, 0.0) for cls, seconds in self.compute_s.items())
        usable_h = sum(self.usable_by_bucket.values()) / 3600
        return {
            "batch_id": batch_id,
            "videos": dict(Counter(r.status for r in rows)),
            "failures_by_type": dict(
                Counter(r.error_type or "unknown" for r in rows if r.status == "Failed")
            ),
            "hours": {
                "in": round(self.seconds_in / 3600, 3),
                "speech": round(self.speech_s / 3600, 3),
                "usable": round(usable_h, 3),
                "exported": {
                    f"{e['spec']['format']}/{e['spec']['view']}": round(e["totals"]["audio_s"] / 3600, 3)
                    for e in exports
                },
            },
            "usable_hours_by_dnsmos": {
                name: round(self.usable_by_bucket[name] / 3600, 3)
                for name in [b[2] for b in DNSMOS_BUCKETS] + [UNLABELLED]
            },
            "usable_hours_by_language": {
                name: round(seconds / 3600, 3) for name, seconds in self.usable_by_language.most_common()
            },
            "hours_per_speaker": _per_speaker_of(self),
            "duplicates": self._duplicates(prices),
            "histograms": {
                "clip_s": _histogram(CLIP_EDGES, self.clip_counts),
                "dnsmos_ovrl_usable_h": _histogram(DNSMOS_EDGES, self.dnsmos_usable_h),
                "speakers_per_video": dict(sorted(self.speakers.items())),
                "music_share_pct": _histogram(MUSIC_EDGES, self.music_counts),
            },
            "clips": {
                "count": self.clips,
                "hours": round(self.clip_s / 3600, 3),
                "policy": self.clip_policy.model_dump(),
            },
            "compute": {
                "hours_by_class": {cls: round(s / 3600, 4) for cls, s in self.compute_s.items()},
                "cost_usd": round(cost, 4),
                "cost_per_usable_hour_usd": round(cost / usable_h, 4) if usable_h > 0 else None,
                "prices_usd_per_hour": {cls: prices.get(cls, 0.0) for cls in self.compute_s},
            },
        }

    def _duplicates(self, prices: dict[str, float]) -> dict[str, Any]:
        """The audio the fleet did not process because an earlier video holds it, and
        what that saved at this batch's own compute per audio hour (an estimate)."""
        per_audio = {cls: s / self.seconds_in for cls, s in self.compute_s.items()} if self.seconds_in else {}
        saved_s = {cls: share * self.duplicate_s for cls, share in per_audio.items()}
        return {
            "videos": self.duplicates,
            "audio_h": round(self.duplicate_s / 3600, 3),
            "compute_h_saved": round(sum(saved_s.values()) / 3600, 4),
            "cost_usd_saved": round(sum(s / 3600 * prices.get(cls, 0.0) for cls, s in saved_s.items()), 4),
            "shared_usable_h": round(self.shared_usable_s / 3600, 3),
        }


def _per_speaker_of(totals: YieldTotals) -> dict[str, Any]:
    """Usable hours per global speaker: how they spread (a few hosts may hold most), the
    top speakers, and the usable hours of videos no linking run has linked yet."""
    hours = [s / 3600 for s in totals.usable_by_speaker.values()]
    counts = [0.0] * (len(SPEAKER_HOUR_EDGES) - 1)
    for h in hours:
        _count(counts, SPEAKER_HOUR_EDGES, h)
    ordered = sorted(hours, reverse=True)
    top_share = sum(ordered[: max(1, len(ordered) // 100)]) / sum(ordered) if ordered else 0.0
    return {
        "speakers": len(hours),
        "linked_usable_h": round(sum(hours), 3),
        "unlinked_usable_h": round(totals.unlinked_usable_s / 3600, 3),
        "top_1pct_share": round(top_share, 4),
        "top": [[who, round(s / 3600, 3)] for who, s in totals.usable_by_speaker.most_common(TOP_SPEAKERS)],
        "histogram_h": _histogram(SPEAKER_HOUR_EDGES, counts),
    }


def _duplicates_line(found: dict[str, Any]) -> str:
    saved = _hours(found["compute_h_saved"])
    return (
        f"{found['videos']} videos, {_hours(found['audio_h'])} not processed (~{saved}"
        f" compute, ${found['cost_usd_saved']:.2f} saved); {_hours(found['shared_usable_h'])} usable shared"
        " with earlier videos, left out of exports"
    )


def _per_speaker_line(spread: dict[str, Any]) -> str:
    if not spread["speakers"]:
        return f"no video linked yet (`starter speakers`); unlinked {_hours(spread['unlinked_usable_h'])}"
    top_who, top_h = spread["top"][0]
    return (
        f"{spread['speakers']} speakers, {_hours(spread['linked_usable_h'])}; the top 1 % hold "
        f"{100 * spread['top_1pct_share']:.0f} %; most: {top_who} {_hours(top_h)}; "
        f"unlinked {_hours(spread['unlinked_usable_h'])}"
    )


def _speech_s(meta: Metadata) -> float:
    return sum(e - s for s, e in merge_intervals([(r.start, r.end) for r in meta.segments]))


def _music_share(meta: Metadata) -> float:
    music = sum(e - s for s, e in merge_intervals([(m.start, m.end) for m in meta.music]))
    return 100.0 * music / meta.duration_s if meta.duration_s > 0 else 0.0


def _language(meta: Metadata, speaker: str) -> str:
    """The speaker's language (Metadata.language_of) where the head was sure of it."""
    heard = meta.language_of(speaker)
    return heard.language if heard and heard.probability >= language.SURE_P else UNKNOWN_LANGUAGE


def _bucket(ovrl: float | None) -> str:
    if ovrl is None:
        return UNLABELLED
    return next(name for low, high, name in DNSMOS_BUCKETS if low <= ovrl < high)


def _count(counts: list[float], edges: list[float], value: float, weight: float = 1.0) -> None:
    """Add ``weight`` to the bin of ``edges`` that holds ``value`` (none: outside them)."""
    for i in range(len(counts)):
        if edges[i] <= value < edges[i + 1]:
            counts[i] += weight
            return


def _histogram(edges: list[float], counts: list[float]) -> dict[str, Any]:
    return {"edges": edges, "counts": [round(c, 4) for c in counts]}


def _hours(hours: float) -> str:
    """Hours as people read them, the same in the summary and on the figure: m:ss min
    under an hour, h:mm h under a hundred, whole hours beyond."""
    seconds = round(hours * 3600)
    if not seconds:
        return "0"
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d} min"
    if hours < 100:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d} h"
    return f"{hours:,.0f} h"


def summary_lines(report: dict[str, Any], png_key: str) -> list[str]:
    hours, compute = report["hours"], report["compute"]
    exported = ", ".join(f"{k} {_hours(v)}" for k, v in hours["exported"].items()) or "none yet"
    unpriced = [cls for cls, price in compute["prices_usd_per_hour"].items() if not price]
    cost = f"${compute['cost_usd']:.2f}"
    if compute["cost_per_usable_hour_usd"] is not None:
        cost += f", ${compute['cost_per_usable_hour_usd']:.2f} per usable hour"
    if unpriced:
        cost += f" (no price for {', '.join(unpriced)}: PIPELINE_GPU_PRICES)"
    policy = report["clips"]["policy"]
    return [
        f"batch {report['batch_id']}: videos: {_counts(report['videos'], lower=True)}",
        f"  hours: in {_hours(hours['in'])}, speech {_hours(hours['speech'])}, usable "
        f"{_hours(hours['usable'])}; "
        f"exported: {exported}",
        "  usable by DNSMOS OVRL: "
        + ", ".join(f"{k} {_hours(v)}" for k, v in report["usable_hours_by_dnsmos"].items()),
        "  usable by language: "
        + (", ".join(f"{k} {_hours(v)}" for k, v in report["usable_hours_by_language"].items()) or "none"),
        f"  clips ({policy['min_s']:g}-{policy['max_s']:g} s): {report['clips']['count']}, "
        f"{_hours(report['clips']['hours'])}",
        f"  speakers per video: {_speakers(report)}",
        f"  usable per global speaker: {_per_speaker_line(report['hours_per_speaker'])}",
        f"  duplicates: {_duplicates_line(report['duplicates'])}",
        f"  failures: {_counts(report['failures_by_type'])}",
        "  compute: "
        + (", ".join(f"{cls} {_hours(h)}" for cls, h in compute["hours_by_class"].items()) or "none")
        + f"; {cost}",
        f"  figure: {png_key}",
    ]


def _hour_bars(ax: Any, values: dict[str, float], title: str) -> None:
    """Horizontal bars of hours, each labelled as the summary lines write it."""
    ax.set_title(title)
    if not any(values.values()):
        _none(ax)
        return
    names = list(values)[::-1]
    ax.barh(names, [values[n] for n in names], color="#4477aa")
    for y, name in enumerate(names):
        ax.annotate(f" {_hours(values[name])}", (values[name], y), va="center", fontsize=9)
    ax.set_xticks([])  # each bar says its hours, as the summary lines do
    ax.set_xlim(0, max(values.values()) * 1.35)


def _count_bars(ax: Any, counts: dict[str, int], title: str, color: str, horizontal: bool = False) -> None:
    """Bars of counts on an integer axis; "none" where there is nothing to count."""
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title)
    if not any(counts.values()):
        _none(ax)
        return
    if horizontal:
        ax.barh(list(counts), list(counts.values()), color=color)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.bar(list(counts), list(counts.values()), color=color)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _none(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=14, color="#777777", transform=ax.transAxes)


def _speakers(report: dict[str, Any]) -> str:
    """``2 (3 videos), 4 (1 video)``: the speaker counts found, and how many videos each."""
    counts = report["histograms"]["speakers_per_video"]
    return ", ".join(f"{n} ({v} video{'s' if v != 1 else ''})" for n, v in counts.items()) or "none"


def _counts(counts: dict, lower: bool = False) -> str:
    """``completed 5, failed 1``: a count per name, for people (not a Python dict)."""
    return ", ".join(f"{str(name).lower() if lower else name} {n}" for name, n in counts.items()) or "none"


def render_png(report: dict[str, Any]) -> bytes:
    """Six panels an ML data lead reads at a glance: hours, quality, clips, speakers,
    music, failures."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    hours = report["hours"]
    bars = {
        "in": hours["in"],
        "speech": hours["speech"],
        "usable": hours["usable"],
        **{f"export {k}": v for k, v in hours["exported"].items()},
    }
    _hour_bars(axes[0, 0], bars, "hours")
    _hour_bars(
        axes[0, 1], report["usable_hours_by_dnsmos"], "usable hours by DNSMOS OVRL (a label, not a cut)"
    )
    for ax, key, title in [
        (axes[0, 2], "clip_s", "clips by duration (s)"),
        (axes[1, 1], "music_share_pct", "videos by music share (%)"),
    ]:
        hist = report["histograms"][key]
        labels = [f"{a:g}-{round(b, 1):g}" for a, b in zip(hist["edges"], hist["edges"][1:])]
        _count_bars(ax, dict(zip(labels, hist["counts"])), title, "#aa7744")
    speakers = report["histograms"]["speakers_per_video"]
    _count_bars(axes[1, 0], {str(k): v for k, v in speakers.items()}, "videos by speaker count", "#8855aa")
    _count_bars(axes[1, 2], report["failures_by_type"], "failed videos by type", "#cc4444", horizontal=True)
    fig.suptitle(f"batch {report['batch_id']}: yield report")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()
