"""Duplicate audio: does the fingerprint find a re-encoded, trimmed, jingled or cut copy of
a recording, never join two different ones, and what does it cost.

    python -m benchmarks.duplicates [--eval DIR] [--samples DIR] [--limit N]
    python -m benchmarks.duplicates --index-videos 340000 [--index-minutes 50]

Why: a duplicate found after download skips the whole GPU pass (core.corpus.fingerprints),
and a false one drops a new episode from the corpus for good, so precision matters more
than recall. The originals are every recording of ``--eval``'s diarization and music
sets and of ``--samples`` (the sample batch: copies of eval recordings that someone else
re-encoded to Vorbis at 22.05 kHz, real-world positives; SAMPLE_SOURCES says which, from
samples/ATTRIBUTION.md). ``--limit N`` keeps the first N originals. Two "episodes" join
the diarization and the music recordings end to end (~4 min each). With ffmpeg, into a
temp folder, each eval original becomes:

- opus32, mp3_64, 8k: re-encoded to Opus 32 kbps, MP3 64 kbps, 8 kHz WAV;
- trim10: its first 10 s cut, then Opus 32 kbps;
- jingle: a 6 s synthetic tone sequence (the same for every file) in front, MP3 64 kbps;
- intro20: a 20 s synthetic theme (the same for every file) in front, MP3 64 kbps;
- midroll: the jingle cut into its middle (an ad break), MP3 64 kbps;
- highlight (from the episodes): 60 s cut at three places, MP3 64 kbps;
- stress kinds, outside the totals: noise (pink noise, each file its own, mixed in at a
  fixed level: below 0 dB SNR on the quietest AMI recordings; MP3 64 kbps), tempo102 (2 %
  faster, pitch kept) and pitch102 (resampled 2 %: faster and a third of a semitone up).

Positive pairs: each variant (the new video, the query) against its original (the
committed one, the reference), each sample against the eval recording it was made from,
each highlight against its episode. A positive whose shared audio is shorter than the
matcher can see (MIN_MATCH_S plus one item's span: the 8 s recordings) is listed, not
scored. Negative pairs: every clip against every clip that holds none of the same
recordings (originals, variants, episodes alike), the jingle and intro variants of two
files included: they share the opener, which must not make them duplicates.

Printed: precision and recall of "duplicate" (the relation from all shared stretches is
same, contained or contains); per kind the relations, the error of the offset and of the
longest stretch's ends against the known cut points, and the worst stretch bit error;
the margins (the worst positive against the best unrelated negative, on MIN_MATCH_S and
on SMOOTH_S windows, and the longest unrelated stretch under MAX_BIT_ERROR); CPU per
audio minute of the fingerprint (ffmpeg's, from RUSAGE_CHILDREN) and per pair of
matching; the stored size. Then the claim's first step (core.corpus.audio_index): with
every reference indexed, whether each positive's reference is among the candidates its
query's keys name, and how many candidates a query fetches. ``--index-videos N`` times
that index alone at corpus scale (synthetic fingerprints: memory, build, query).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.analysis.audio import ffmpeg_binary
from core.contracts.video import Relation
from core.corpus.audio_index import AudioIndex, index_keys
from core.corpus.fingerprints import (
    ITEM_S,
    MAX_BIT_ERROR,
    MIN_MATCH_S,
    SMOOTH_S,
    SPAN_S,
    Fingerprint,
    Overlap,
    bit_errors,
    candidate_offsets,
    fingerprint,
    overlaps,
    relation,
)
from devstack.media import ffmpeg, join
from devstack.stack import REPO_ROOT

DEFAULT_EVAL = REPO_ROOT.parent / "shared" / "eval"
DEFAULT_SAMPLES = REPO_ROOT / "samples" / "audio"
# samples/ATTRIBUTION.md: the eval recording each sample was made from, and where
# (second in the sample, second in the recording, length)
SAMPLE_SOURCES: dict[str, list[tuple[str, float, float, float]]] = {
    "ep01-jingle-and-two-hosts": [
        ("synthradio_example-2", 0.0, 0.0, 8.0),
        ("pyannote_sample", 8.0, 0.0, 30.0),
    ],
    "ep02-panel-of-four": [("pyaa_diarizationExample", 0.0, 0.0, 41.984)],
    "ep03-three-voices": [("falcon_test", 0.0, 0.0, 18.578)],
    "ep04-meeting-excerpt": [("pyannote_debug_dev00", 0.0, 0.0, 30.0)],
    "ep05-radio-segment": [("synthradio_example-1", 0.0, 0.0, 8.0)],
}
JINGLE_S = 6.0
INTRO_S = 20.0
OPENERS = {"jingle", "intro"}  # what different episodes of one channel may share
TRIM_S = 10.0
HIGHLIGHT_S = 60.0
HIGHLIGHT_PLACES = (0.1, 0.5, 0.9)  # where in an episode's free range each cut starts
EPISODE_MIN_S = 150.0  # an episode must be well longer than a highlight
SCORABLE_S = MIN_MATCH_S + SPAN_S  # shared audio the matcher can see at all
DETECTED = {Relation.SAME, Relation.CONTAINED, Relation.CONTAINS}
MP3 = ("-c:a", "libmp3lame", "-b:a", "64k")
OPUS = ("-c:a", "libopus", "-b:a", "32k")
REENCODES: dict[str, tuple[str, tuple[str, ...]]] = {  # kind: (suffix, ffmpeg output options)
    "opus32": (".opus", OPUS),
    "mp3_64": (".mp3", MP3),
    "8k": (".wav", ("-ar", "8000", "-c:a", "pcm_s16le")),
    "noise": (
        ".mp3",
        (
            "-filter_complex",
            "[0:a]aformat=sample_rates=44100:channel_layouts=mono[a];"
            "anoisesrc=a=0.03:c=pink:seed={seed}:r=44100[n];[a][n]amix=inputs=2:duration=first",
            *MP3,
        ),
    ),
    "tempo102": (".mp3", ("-af", "atempo=1.02", *MP3)),
    "pitch102": (".mp3", ("-af", "aresample=44100,asetrate=44982,aresample=44100", *MP3)),
}
STRESS = {"noise", "tempo102", "pitch102"}
EXPECTED = {  # the relations that are right for each kind (query: the new video)
    "opus32": {Relation.SAME},
    "mp3_64": {Relation.SAME},
    "8k": {Relation.SAME},
    "trim10": {Relation.SAME, Relation.CONTAINED},  # 10 s is within a long file's allowance
    "jingle": {Relation.SAME, Relation.CONTAINS},  # likewise the 6 s jingle
    "intro20": {Relation.SAME, Relation.CONTAINS},
    "midroll": {Relation.SAME, Relation.CONTAINS},
    "highlight": {Relation.CONTAINED},
    "sample": {Relation.SAME, Relation.CONTAINS},  # ep01 is an 8 s sting, then pyannote_sample
}


@dataclass
class Clip:
    name: str
    path: Path
    kind: str  # original, sample, episode, or a variant's kind
    sources: set[str]  # the eval recordings (and openers) whose audio it holds
    duration_s: float = 0.0
    fp: Fingerprint | None = None


@dataclass
class Pair:
    """The query (new video) against the reference (committed one); for a positive, the
    audio they share as it was cut: (second in the query, second in the reference, length)."""

    query: Clip
    reference: Clip
    kind: str
    truth: list[tuple[float, float, float]] = field(default_factory=list)
    stretches: list[Overlap] = field(default_factory=list)
    rel: Relation | None = None

    @property
    def found(self) -> Overlap | None:
        return self.stretches[0] if self.stretches else None

    def fingerprints(self) -> tuple[Fingerprint, Fingerprint]:
        assert self.query.fp is not None and self.reference.fp is not None
        return self.query.fp, self.reference.fp


def probe_s(path: Path) -> float:
    probe = str(Path(ffmpeg_binary()).with_name("ffprobe"))
    out = subprocess.run(
        [probe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def make_tones(path: Path, notes: Sequence[tuple[float, ...]], note_s: float) -> Path:
    """Notes (each a chord of frequencies) of ``note_s`` each, one after another: what a
    channel's sting or theme is to chroma. (A comma inside a filter's arguments is escaped:
    a bare one ends the filter.)"""
    terms = "+".join(
        f"between(t\\,{i * note_s:.3f}\\,{(i + 1) * note_s:.3f})*("
        + "+".join(f"sin(2*PI*{f}*t)" for f in chord)
        + ")"
        for i, chord in enumerate(notes)
    )
    length = len(notes) * note_s
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc=0.2*({terms}):s=22050:d={length}", "-c:a", "pcm_s16le", str(path))
    return path


def make_jingle(path: Path) -> Path:
    """C E G C, 1.5 s each."""
    return make_tones(path, [(262.0,), (330.0,), (392.0,), (523.0,)], JINGLE_S / 4)


def make_intro(path: Path) -> Path:
    """A theme over A minor, D minor, F and E: 16 two-note steps of 1.25 s."""
    rng = np.random.default_rng(7)
    roots = [220.0, 146.8, 174.6, 164.8]
    notes = [(roots[i // 4], roots[i // 4] * float(rng.choice([1.189, 1.26, 1.498, 2.0]))) for i in range(16)]
    return make_tones(path, notes, INTRO_S / 16)


def build(originals: list[Clip], work: Path) -> tuple[list[Clip], list[Pair]]:
    """The variants and episodes, and the positive pairs with where their audio was cut."""
    clips: list[Clip] = []
    positives: list[Pair] = []
    by_name = {c.name: c for c in originals}
    jingle = make_jingle(work / "jingle.wav")
    intro = make_intro(work / "intro.wav")

    def add(
        name: str, kind: str, original: Clip, truth: list[tuple[float, float, float]], *extra: str
    ) -> None:
        clips.append(Clip(name, work / name, kind, {*original.sources, *extra}))
        positives.append(Pair(clips[-1], original, kind, truth))

    for number, original in enumerate(originals):
        d = original.duration_s
        if original.kind == "sample":
            for source, q_at, r_at, length in SAMPLE_SOURCES.get(original.name, []):
                if source in by_name:
                    positives.append(Pair(original, by_name[source], "sample", [(q_at, r_at, length)]))
            continue
        for kind, (suffix, options) in REENCODES.items():
            name = f"{original.name}.{kind}{suffix}"
            # {seed}: each file its own noise; the same noise in two files is audio they share
            ffmpeg(
                "-i",
                str(original.path),
                "-ac",
                "1",
                *(o.format(seed=number + 1) for o in options),
                str(work / name),
            )
            shared = (0.0, 0.0, d) if kind not in ("tempo102", "pitch102") else (0.0, 0.0, d / 1.02)
            add(name, kind, original, [shared])
        if d > TRIM_S + SCORABLE_S:
            name = f"{original.name}.trim10.opus"
            ffmpeg("-ss", str(TRIM_S), "-i", str(original.path), "-ac", "1", *OPUS, str(work / name))
            add(name, "trim10", original, [(0.0, TRIM_S, d - TRIM_S)])
        for kind, opener, length in (("jingle", jingle, JINGLE_S), ("intro20", intro, INTRO_S)):
            name = f"{original.name}.{kind}.mp3"
            join([opener, original.path], work / "join", *MP3, str(work / name), rate=22050)
            add(name, kind, original, [(length, 0.0, d)], kind.rstrip("0123456789"))
        if d / 2 > SCORABLE_S:
            name = f"{original.name}.midroll.mp3"
            half = round(d / 2, 2)
            head = work / "head.wav"
            ffmpeg("-t", str(half), "-i", str(original.path), "-ac", "1", "-ar", "22050", str(head))
            join([head, jingle, (original.path, half)], work / "join", *MP3, str(work / name), rate=22050)
            add(name, "midroll", original, [(0.0, 0.0, half), (half + JINGLE_S, half, d - half)], "jingle")

    # episodes: each eval folder's recordings end to end; highlights cut from them
    for folder in ("diarization", "music"):
        parts = [c for c in originals if c.kind == "original" and c.path.parent.parent.name == folder]
        if sum(c.duration_s for c in parts) < EPISODE_MIN_S:
            continue
        path = work / f"episode-{folder}.wav"
        join([c.path for c in parts], work / "join", "-c:a", "pcm_s16le", str(path), rate=22050)
        episode = Clip(path.name, path, "episode", {s for c in parts for s in c.sources}, probe_s(path))
        clips.append(episode)
        starts = np.cumsum([0.0] + [c.duration_s for c in parts])
        for place in HIGHLIGHT_PLACES:
            at = round(place * (episode.duration_s - HIGHLIGHT_S), 2)
            name = f"episode-{folder}.highlight{int(at)}.mp3"
            ffmpeg("-ss", str(at), "-t", str(HIGHLIGHT_S), "-i", str(path), *MP3, str(work / name))
            inside = [
                c
                for c, a in zip(parts, starts, strict=False)
                if a < at + HIGHLIGHT_S and a + c.duration_s > at
            ]
            clips.append(Clip(name, work / name, "highlight", {s for c in inside for s in c.sources}))
            positives.append(Pair(clips[-1], episode, "highlight", [(0.0, at, HIGHLIGHT_S)]))
    for clip in clips:
        if not clip.duration_s:
            clip.duration_s = probe_s(clip.path)
    return clips, positives


def best_window_error(pair: Pair, window_s: float) -> float:
    """The least mean bit error over any ``window_s`` of aligned items, at the offsets the
    matcher considers (0.5: none to consider): how near a pair comes, threshold-free."""
    query, reference = pair.fingerprints()
    width = max(1, round(window_s / ITEM_S))
    best = 0.5
    for offset in candidate_offsets(query.items, reference.items):
        for o in (offset - 1, offset, offset + 1):
            errors = bit_errors(query.items, reference.items, o)
            if len(errors) >= width:
                best = min(best, float(np.convolve(errors, np.ones(width) / width, mode="valid").min()))
    return best


def worst_shared_error(pair: Pair, window_s: float) -> float | None:
    """The greatest mean bit error over any ``window_s`` of a positive's shared audio,
    aligned as it was cut (the better of the item grids around the true shift): what a
    threshold must stay above."""
    query, reference = pair.fingerprints()
    width = max(1, round(window_s / ITEM_S))
    worst = None
    for q_at, r_at, length in pair.truth:
        first = int(np.ceil(q_at / ITEM_S))  # the items whose whole span is shared audio
        last = int(np.floor((q_at + min(length, pair.query.duration_s - q_at) - SPAN_S) / ITEM_S)) + 1
        shift = round((r_at - q_at) / ITEM_S)
        grids = []
        for o in (shift - 1, shift, shift + 1):
            errors = bit_errors(query.items, reference.items, o)
            inside = errors[max(0, first - max(0, -o)) : max(0, last - max(0, -o))]
            if len(inside) >= width:
                grids.append(float(np.convolve(inside, np.ones(width) / width, mode="valid").max()))
        if grids:
            worst = max(worst or 0.0, min(grids))
    return worst


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def mean_max(values: list[float]) -> str:
    if not values:
        return "    - (    -)"
    return f"{fmt(float(np.mean(values)), 2):>5s} ({fmt(max(values), 2):>5s})"


def kind_row(kind: str, pairs: list[Pair]) -> None:
    rels = Counter(p.rel.value if p.rel else "none" for p in pairs)
    right = sum(p.rel in EXPECTED.get(kind, set()) for p in pairs)
    offsets: list[float] = []
    ends: list[float] = []
    errors: list[float] = []
    for p in pairs:
        if p.found is None or not p.truth:
            continue
        o = p.found
        # the cut segment the longest stretch lies on: the one its offset is nearest
        q_at, r_at, length = min(p.truth, key=lambda t: abs(o.offset_s - (t[1] - t[0])))
        offsets.append(abs(o.offset_s - (r_at - q_at)))
        ends.append(
            max(
                abs(o.query_start_s - q_at),
                abs(o.query_end_s - min(q_at + length, p.query.duration_s)),
                abs(o.reference_start_s - r_at),
                abs(o.reference_end_s - min(r_at + length, p.reference.duration_s)),
            )
        )
        errors.append(o.bit_error)
    expected = f"{right:3d}/{len(pairs):<3d}" if kind in EXPECTED else "  -    "
    print(
        f"  {kind:10s} {len(pairs):5d} {sum(p.rel in DETECTED for p in pairs):5d}   {expected}  "
        f"{', '.join(f'{k} {v}' for k, v in sorted(rels.items())):32s} "
        f"{mean_max(offsets)}  {mean_max(ends)}  "
        f"{fmt(max(errors, default=None))}"
    )
    if kind in EXPECTED:
        for p in pairs:
            if p.rel not in EXPECTED[kind]:
                print(f"      {p.query.name} vs {p.reference.name}: {p.rel and p.rel.value} {p.stretches}")


def run(eval_dir: Path, samples: Path, limit: int | None) -> None:
    started = time.perf_counter()
    originals = [
        Clip(p.stem, p, "original", {p.stem})
        for folder in ("diarization", "music")
        for p in sorted((eval_dir / folder / "audio").glob("*"))
        if p.is_file()
    ]
    originals += [
        Clip(p.stem, p, "sample", {s for s, *_ in SAMPLE_SOURCES.get(p.stem, [])} or {p.stem})
        for p in sorted(samples.glob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]
    originals = originals[:limit] if limit else originals
    for clip in originals:
        clip.duration_s = probe_s(clip.path)
    with tempfile.TemporaryDirectory(prefix="duplicates-") as tmp:
        variants, positives = build(originals, Path(tmp))
        clips = originals + variants
        audio_min = sum(c.duration_s for c in clips) / 60
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        for clip in clips:
            clip.fp = fingerprint(clip.path, media_s=clip.duration_s)
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    fp_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    negatives = [
        Pair(
            q,
            r,
            "shared " + "+".join(sorted(q.sources & r.sources)) if q.sources & r.sources else "unrelated",
        )
        for q in clips
        for r in clips
        if q is not r and not (q.sources & r.sources) - OPENERS
    ]
    match_cpu = 0.0
    for pair in positives + negatives:
        query, reference = pair.fingerprints()
        tick = time.process_time()
        pair.stretches = overlaps(query, reference)
        match_cpu += time.process_time() - tick
        pair.rel = relation(pair.stretches, pair.query.duration_s, pair.reference.duration_s)

    scorable = [p for p in positives if max(t[2] for t in p.truth) >= SCORABLE_S]
    scored = [p for p in scorable if p.kind not in STRESS]
    stress = [p for p in scorable if p.kind in STRESS]
    unscored = [p for p in positives if p not in scorable]
    unrelated = [p for p in negatives if p.kind == "unrelated"]
    print(
        f"{len(originals)} originals, {len(clips)} clips ({audio_min:.1f} audio min); positive pairs: "
        f"{len(scored)} scored, {len(stress)} stress, {len(unscored)} with under {SCORABLE_S:.1f} s of "
        f"shared audio not scored; negative pairs: {len(negatives)} ({len(unrelated)} unrelated)"
    )
    tp = sum(p.rel in DETECTED for p in scored)
    fp = sum(p.rel in DETECTED for p in negatives)
    precision = tp / (tp + fp) if tp + fp else None
    print(
        f"duplicate (same/contained/contains): precision {fmt(precision)} "
        f"recall {fmt(tp / len(scored) if scored else None)} (TP {tp}, FP {fp}, FN {len(scored) - tp})"
    )

    header = "pairs   dup  right    relations                        offset err s  ends err s     bit error"
    print(f"\npositives  {header}\n{'':13s}{'':45s}{'mean (max)':14s}mean (max)     (worst)")
    for group in (scored, stress):
        kinds: dict[str, list[Pair]] = defaultdict(list)
        for p in group:
            kinds[p.kind].append(p)
        for kind, pairs in kinds.items():
            kind_row(kind, pairs)
        if group is scored:
            print("  stress (not in the totals):")
    for p in unscored:
        print(f"  not scored: {p.query.name} vs {p.reference.name} ({p.kind}): {p.rel and p.rel.value}")

    print(f"\nnegatives  {header}")
    groups: dict[str, list[Pair]] = defaultdict(list)
    for p in negatives:
        groups[p.kind].append(p)
    for kind, pairs in sorted(groups.items()):
        kind_row(kind, pairs)
    for p in negatives:
        if p.rel in DETECTED:
            print(f"      duplicate: {p.query.name} vs {p.reference.name}: {p.rel.value} {p.stretches}")

    print()
    for window in (MIN_MATCH_S, SMOOTH_S):
        worst_pos = max(
            ((e, p) for p in scored if (e := worst_shared_error(p, window)) is not None), key=lambda x: x[0]
        )
        best_neg = min(((best_window_error(p, window), p) for p in unrelated), key=lambda x: x[0])
        print(
            f"margin, mean bit error over {window:g} s windows: worst in a positive's shared audio "
            f"{worst_pos[0]:.3f} ({worst_pos[1].query.name}), best of an unrelated pair {best_neg[0]:.3f} "
            f"({best_neg[1].query.name} vs {best_neg[1].reference.name})"
        )
    longest = max(
        ((o.duration_s, p) for p in unrelated for o in overlaps(*p.fingerprints(), min_match_s=0.0)),
        key=lambda x: x[0],
        default=None,
    )
    if longest:
        print(
            f"longest unrelated stretch under MAX_BIT_ERROR {MAX_BIT_ERROR} (any length; MIN_MATCH_S "
            f"{MIN_MATCH_S:g}): {longest[0]:.1f} s ({longest[1].query.name} vs {longest[1].reference.name})"
        )
    found = [p.found.bit_error for p in scored if p.found]
    print(f"positives' longest stretch bit error: median {np.median(found):.3f}, max {max(found):.3f}")

    stored = sum(len(c.fp.to_bytes()) for c in clips if c.fp)
    raw = sum(4 * len(c.fp.items) for c in clips if c.fp)
    print(
        f"\nfingerprint: {fp_cpu / audio_min:.3f} CPU s per audio minute (ffmpeg decode + chromaprint: "
        f"{fp_cpu:.1f} CPU s for {audio_min:.1f} min, {wall:.1f} s wall)"
    )
    print(
        f"stored: {stored / audio_min / 1024:.2f} KiB per audio minute ({raw / stored:.2f}x smaller than raw)"
    )
    pairs_n = len(positives) + len(negatives)
    print(f"matching: {1000 * match_cpu / pairs_n:.2f} CPU ms a pair (mean over {pairs_n} pairs)")
    long_match(clips)
    index_lookup(clips, scored + stress, unrelated)
    print(f"\n({time.perf_counter() - started:.0f} s)")


def long_match(clips: list[Clip]) -> None:
    """One match of two 50 min fingerprints: every clip end to end, against the same clips
    in reverse order (stretches shared at many offsets: the costly case)."""
    items = [c.fp.items for c in clips if c.fp is not None]
    need = round(50 * 60 / ITEM_S)
    copies = need // sum(map(len, items)) + 1
    forward = Fingerprint(np.concatenate(items * copies)[:need])
    backward = Fingerprint(np.concatenate(items[::-1] * copies)[:need])
    tick = time.process_time()
    found = overlaps(forward, backward)
    spent = time.process_time() - tick
    print(f"one 50 min x 50 min match: {1000 * spent:.0f} CPU ms ({len(found)} shared stretches found)")


def index_lookup(clips: list[Clip], positives: list[Pair], unrelated: list[Pair]) -> None:
    """The claim's first step (core.corpus.audio_index): with every reference in the
    index, is a positive's reference among the candidates its query's keys name, and how
    many candidates does a query fetch and match in full?"""
    index = AudioIndex()
    references = {p.reference.name: p.reference for p in positives + unrelated}
    for clip in references.values():
        assert clip.fp is not None
        index.add(clip.name, index_keys(clip.fp))
    kinds: dict[str, list[bool]] = defaultdict(list)
    fetched, missed = [], []
    for pair in positives:
        assert pair.query.fp is not None
        named = [vid for vid, _ in index.candidates(index_keys(pair.query.fp), exclude={pair.query.name})]
        fetched.append(len(named))
        hit = pair.reference.name in named
        kinds["stress " + pair.kind if pair.kind in STRESS else pair.kind].append(hit)
        if not hit and pair.kind not in STRESS:
            assert pair.reference.fp is not None
            shared = np.intersect1d(index_keys(pair.query.fp), index_keys(pair.reference.fp))
            missed.append(
                f"{pair.query.name} ({pair.query.duration_s:.0f} s) vs {pair.reference.name}: "
                f"{len(shared)} keys shared"
            )
    scored = [hit for kind, hits in kinds.items() if not kind.startswith("stress") for hit in hits]
    print(
        f"\nindex lookup ({len(references)} references indexed, keys {index.memory_bytes() / 1024:.0f} KiB): "
        f"the reference among the candidates for {sum(scored)}/{len(scored)} scored positives; "
        f"candidates fetched per query: mean {np.mean(fetched):.1f}, max {max(fetched)}"
    )
    print("  per kind: " + ", ".join(f"{kind} {sum(h)}/{len(h)}" for kind, h in kinds.items()))
    for line in missed:
        print(f"  missed: {line}")


def index_scale(videos: int, minutes: float) -> None:
    """The index at corpus scale: ``videos`` fingerprints of ``minutes`` each (random
    items: their keys spread as a corpus' do), added one by one as claims add them."""
    rng = np.random.default_rng(0)
    index = AudioIndex()
    items = round(minutes * 60 / ITEM_S)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tick = time.perf_counter()
    probes = []
    for i in range(videos):
        fp = Fingerprint(rng.integers(0, 2**32, items, dtype=np.uint64).astype(np.uint32))
        keys = index_keys(fp)
        index.add(f"v{i}", keys)
        index.candidates(keys[:1])  # a claim queries after each add: the new keys are merged in
        if i % max(1, videos // 5) == 0:
            probes.append((f"v{i}", keys))
        if (i + 1) % 20000 == 0:
            print(f"  {i + 1} videos, {time.perf_counter() - tick:.0f} s", flush=True)
    built = time.perf_counter() - tick
    tick = time.perf_counter()
    found = [index.candidates(keys[::4])[0][0] == vid for vid, keys in probes]
    query_ms = 1000 * (time.perf_counter() - tick) / len(probes)
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    print(
        f"index scale: {videos} videos x {minutes:g} min: {index.memory_bytes() / 2**20:.0f} MiB of keys, "
        f"peak +{rss:.0f} MiB, built (one add and merge per claim) in {built:.0f} s, "
        f"a query {query_ms:.0f} ms, a quarter of a video's keys finds it first: {sum(found)}/{len(found)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.duplicates", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--eval", type=Path, default=DEFAULT_EVAL, help=f"eval folder (default {DEFAULT_EVAL})"
    )
    parser.add_argument(
        "--samples", type=Path, default=DEFAULT_SAMPLES, help=f"sample audio (default {DEFAULT_SAMPLES})"
    )
    parser.add_argument("--limit", type=int, help="keep the first N originals (a quick run)")
    parser.add_argument(
        "--index-videos",
        type=int,
        help="instead: the claim index at corpus scale, this many synthetic videos (--index-minutes each)",
    )
    parser.add_argument("--index-minutes", type=float, default=50.0)
    args = parser.parse_args(argv)
    if args.index_videos:
        index_scale(args.index_videos, args.index_minutes)
        return 0
    if not (args.eval / "diarization" / "audio").is_dir():
        parser.error(f"{args.eval} has no diarization/audio")
    run(args.eval, args.samples, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
