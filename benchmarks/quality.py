"""Quality of diarization, usable stretches, embeddings and music detection on annotated audio.

    python -m benchmarks.quality --diarization DIR --music DIR
        [--backend NAME] [--pyannote-model PATH_OR_ID] [--out HYPDIR] [--limit N]
    python -m benchmarks.quality --longform [--seed N] [--longform-limit N] [--out DIR] [--backend NAME]
    python -m benchmarks.quality --podcasts [--seed N] [--out DIR] [--backend NAME]

Why: thresholds and backends are changed for quality, and "better" has to be a number
measured the same way every time, through the very functions the activities call
(``core.analysis.audio.transcode`` + ``load_wav``, the configured diarization backend,
``core.analysis.music.detect_music``, ``core.store.outputs.annotate_segments``,
``core.analysis.speaker_embeddings.embed_segments``), so a figure here is what production would get.

Folder layouts (any folder laid out like /work/shared/eval works):

- diarization: ``audio/<uri>.*``, ``rttm/<uri>.rttm``, optional ``uem/<uri>.uem``.
  DER is pyannote.metrics ``DiarizationErrorRate(collar=0.5, skip_overlap=False)``
  inside the UEM, else the whole file; the total is accumulated over files, so it is
  weighted by scored reference speech.
  Overlap detection: frame-level (10 ms) precision/recall of "the hypothesis has two
  or more speakers active" against the same in the reference, inside the scored region.
- music: ``audio/<name>.*``, ``labels/<name>.csv`` (``start,end,label`` rows, may
  overlap). Frame-level (10 ms) precision/recall/F1 of the ``music`` class.

``--longform`` builds long recordings from the annotated files (``benchmarks.longform``:
the set once and three times over, music interludes between files; 6 and 17 min from
the shared eval set) into ``DIR/longform-data`` (else a temp dir) and scores them
exactly as above, adding the relative speaker-count error, whose goal there is within
±25 %. ``--podcasts`` does the same with the podcast-like set (2, 3, 4 and 6 voices
recurring over 30-60 min, ``benchmarks.longform.PODCASTS``), where the count must be
exact. There ``--diarization``/``--music`` name the sources to build from (default: the
shared eval set) and the music table is not printed.

``DER*`` (pretrained backend): the same local speakers laid out with the reference's
who-is-who (each one given the reference speaker it covers most). The gap between DER
and DER* is the clustering's to close; DER* itself is the segmentation's (a local
speaker that is two people, speech missed or invented), which no clustering fixes.
(Where two local speakers of one window cover the same person, the layout keeps one of
them, so in heavy overlap DER* can exceed DER.)

Figures that cannot be computed (no reference speech, no music, nothing flagged)
print as ``n/a`` rather than a misleading 0 or a division by zero.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # pyannote telemetry: no network

import numpy as np  # noqa: E402

from benchmarks.eval_set import RATE, annotated_diarization, annotated_samples, read_labels  # noqa: E402
from core.contracts.rttm import Interval  # noqa: E402
from core.contracts.video import MusicRegion, Segment  # noqa: E402

HOP_S = 0.01  # frame size of every frame-level figure
MIN_USABLE_S = 1.0
MIN_EMBED_TURN_S = 1.0
COLLAR_S = 0.5


def frame_mask(intervals: list[Interval], n_frames: int, hop: float = HOP_S) -> np.ndarray:
    """Boolean mask of the frames covered by ``intervals`` (clipped to the file)."""
    mask = np.zeros(n_frames, dtype=bool)
    for s, e in intervals:
        a, b = max(0, int(round(s / hop))), min(n_frames, int(round(e / hop)))
        if b > a:
            mask[a:b] = True
    return mask


def speaker_count(turns: list[Segment], n_frames: int) -> np.ndarray:
    """Number of distinct speakers talking in each frame (a speaker's own turns may overlap)."""
    count = np.zeros(n_frames, dtype=np.int16)
    for speaker in {t.speaker for t in turns}:
        count += frame_mask([(t.start, t.end) for t in turns if t.speaker == speaker], n_frames)
    return count


@dataclass
class Counts:
    """Frame counts of a binary detection; sums over files give the pooled figures."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @classmethod
    def of(cls, hyp: np.ndarray, ref: np.ndarray) -> Counts:
        return cls(int((hyp & ref).sum()), int((hyp & ~ref).sum()), int((~hyp & ref).sum()))

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float | None:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


def ratio(num: float, den: float) -> float | None:
    """num / den, or None (printed n/a) when there is nothing to divide by."""
    return num / den if den > 0 else None


def fmt(value: float | None, spec: str = ".2f", width: int = 6) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}{spec}}"


def signed(value: float | None, width: int) -> str:
    """A signed figure (+12.5, -40.0) right-aligned, n/a when there is none."""
    return f"{'n/a' if value is None else f'{value:+.1f}':>{width}}"


def ordered_fraction(same: np.ndarray, diff: np.ndarray) -> float | None:
    """Fraction of (same, diff) pairs with same > diff (ties count half): the ROC AUC.

    1.0 means one cosine threshold separates every same-speaker pair from every
    different-speaker pair; 0.5 is chance.
    """
    if len(same) == 0 or len(diff) == 0:
        return None
    d = np.sort(diff)
    below = np.searchsorted(d, same, side="left")
    ties = np.searchsorted(d, same, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(same) * len(d)))


# ----------------------------------------------------------------------- diarization


@dataclass
class DiarizationFile:
    uri: str
    scored_s: float
    der: float | None
    miss: float | None
    false_alarm: float | None
    confusion: float | None
    n_est: int
    n_ref: int
    usable: Counts
    overlap: Counts
    same: np.ndarray  # pair cosines of embeddings pooled from one CAM++ pass (the pipeline's)
    diff: np.ndarray
    pass_same: np.ndarray  # the same, from a CAM++ pass over each stretch (diarizations without frames)
    pass_diff: np.ndarray
    bound: float | None = None  # DER with the reference's who-is-who (pretrained backend only)


def pair_similarities(embeddings: np.ndarray, speakers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of same-speaker and different-speaker pairs (rows are L2-normalised)."""
    if len(speakers) < 2:
        return np.zeros(0), np.zeros(0)
    sims = embeddings @ embeddings.T
    i, j = np.triu_indices(len(speakers), k=1)
    labels = np.array(speakers)
    same = labels[i] == labels[j]
    return sims[i, j][same], sims[i, j][~same]


def single_speaker_stretches(reference: list[Segment], duration: float) -> list[Segment]:
    """The parts of each reference turn where no one else speaks, longer than
    MIN_EMBED_TURN_S: what an embedding of "a stretch of this speaker" should see."""
    stretches = []
    for turn in reference:
        pieces = [(turn.start, min(turn.end, duration))]
        for other in reference:
            if other.speaker == turn.speaker:
                continue
            pieces = [
                part
                for s, e in pieces
                for part in ((s, min(e, other.start)), (max(s, other.end), e))
                if part[1] > part[0]
            ]
        stretches += [
            Segment(start=s, end=e, speaker=turn.speaker) for s, e in pieces if e - s > MIN_EMBED_TURN_S
        ]
    return stretches


def der_detail(
    uri: str, reference: list[Segment], hypothesis: list[Segment], scored: list[Interval] | None, metric
) -> dict:
    """pyannote.metrics' detailed DER components of one file inside its scored region;
    ``metric`` accumulates them, so ``abs(metric)`` is the pooled DER of every file so far."""
    from pyannote.core import Annotation, Timeline
    from pyannote.core import Segment as PSegment

    def annotation(turns: list[Segment]) -> Annotation:
        ann = Annotation(uri=uri)
        for k, t in enumerate(turns):
            ann[PSegment(t.start, t.end), k] = t.speaker
        return ann

    uem = None if scored is None else Timeline([PSegment(s, e) for s, e in scored], uri=uri)
    return dict(metric(annotation(reference), annotation(hypothesis), uem=uem, detailed=True))


def der_metric():
    """The DER every figure here is scored with (``COLLAR_S``, overlapped speech scored)."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    return DiarizationErrorRate(collar=COLLAR_S, skip_overlap=False)


def der(
    reference: list[Segment],
    hypothesis: list[Segment],
    scored: list[Interval] | None = None,
    metric=None,
) -> float:
    """One file's DER, a fraction, over ``scored`` (a UEM; None: everything). With
    ``metric`` the file is also accumulated into it (``abs(metric)``: the pooled DER)."""
    detail = der_detail("file", reference, hypothesis, scored, metric or der_metric())
    errors = detail["missed detection"] + detail["false alarm"] + detail["confusion"]
    return errors / detail["total"] if detail["total"] else 0.0


def reference_clusters(backend, chunks, reference: list[Segment]) -> np.ndarray:
    """(windows, 3) cluster of each local speaker if who-is-who were right: the reference
    speaker who talks most over its frames (one more cluster for a local speaker over no
    reference speech). Laid out, this is the best any clustering of these local speakers
    can do: what stays wrong is the segmentation's (a local speaker that is two people,
    speech missed or invented)."""
    n_frames, step, duration = backend.frames
    speakers = {name: k for k, name in enumerate(sorted({t.speaker for t in reference}))}
    starts = np.concatenate([c["window_start_s"] for c in chunks])
    segmentation = np.concatenate([c["segmentation"] for c in chunks]).astype(bool)
    clusters = np.full(segmentation.shape[::2], -1, dtype=int)
    for w, start in enumerate(starts):
        centres = start + np.arange(n_frames) * step + duration / 2
        talking = np.zeros((n_frames, len(speakers) + 1), dtype=bool)
        for t in reference:
            if t.end > start and t.start < centres[-1] + step:
                talking[(centres >= t.start) & (centres < t.end), speakers[t.speaker]] = True
        talking[:, -1] = ~talking[:, :-1].any(axis=1)
        for k in np.flatnonzero(segmentation[w].any(axis=0)):
            clusters[w, k] = int(np.argmax(talking[segmentation[w, :, k]].sum(axis=0)))
    return clusters


def score_diarization_file(uri, samples, reference, output, scored, metric, bound=None) -> DiarizationFile:
    """Every per-file diarization figure from one file's samples, reference and the
    backend's output (turns, and where it is unsure how many people talk)."""
    hypothesis = output.segments
    from core.analysis import campplus
    from core.analysis.music import detect_music
    from core.analysis.speaker_embeddings import embed_from_frames, embed_segments
    from core.store.outputs import UsableRules, annotate_segments

    duration = len(samples) / RATE
    n_frames = int(round(duration / HOP_S))
    detail = der_detail(uri, reference, hypothesis, scored, metric)
    total = detail["total"]
    der = ratio(100.0 * (detail["missed detection"] + detail["false alarm"] + detail["confusion"]), total)

    in_scope = frame_mask(scored, n_frames)
    music = detect_music(samples, RATE)
    rows = annotate_segments(hypothesis, music, UsableRules(min_s=MIN_USABLE_S), output.uncertain)
    usable = frame_mask([(s, e) for row in rows for s, e in row["usable_regions"]], n_frames)
    single = speaker_count(reference, n_frames) == 1
    usable_counts = Counts.of(usable & in_scope, single & in_scope)
    overlap = overlap_counts(reference, hypothesis, in_scope)

    turns = single_speaker_stretches(reference, duration)
    speakers = [t.speaker for t in turns]
    first, frames = campplus.frame_features(samples, 0, len(samples))  # as the diarize stage keeps them
    pooled = embed_from_frames(frames.astype(np.float16), first, turns, len(samples))
    same, diff = pair_similarities(pooled, speakers)
    pass_same, pass_diff = pair_similarities(embed_segments(samples, turns), speakers)

    return DiarizationFile(
        uri=uri,
        scored_s=sum(e - s for s, e in scored),
        der=der,
        miss=ratio(100.0 * detail["missed detection"], total),
        false_alarm=ratio(100.0 * detail["false alarm"], total),
        confusion=ratio(100.0 * detail["confusion"], total),
        n_est=len({t.speaker for t in hypothesis}),
        n_ref=len({t.speaker for t in reference}),
        usable=usable_counts,
        overlap=overlap,
        same=same,
        diff=diff,
        pass_same=pass_same,
        pass_diff=pass_diff,
        bound=None if bound is None else 100.0 * bound,
    )


def overlap_counts(reference: list[Segment], hypothesis: list[Segment], in_scope: np.ndarray) -> Counts:
    """Frames where the hypothesis has two or more speakers at once vs where the reference
    has: overlapped speech is what makes a stretch unusable, and a backend that never
    outputs overlap can only reach it by luck."""
    n_frames = len(in_scope)
    hyp = speaker_count(hypothesis, n_frames) >= 2
    ref = speaker_count(reference, n_frames) >= 2
    return Counts.of(hyp & in_scope, ref & in_scope)


def evaluate_diarization(folder: Path, backend, out: Path, limit: int | None, longform: bool = False) -> None:
    """Diarize every file of ``folder``, write hypothesis RTTMs to ``out`` and print the tables.

    ``longform`` adds the relative speaker-count error per file (its goal on long
    recordings is a number of speakers within ±25 %, not an exact count)."""

    from core.analysis.diarization.pretrained import PretrainedDiarization
    from core.contracts.rttm import rttm_text

    out.mkdir(parents=True, exist_ok=True)
    metric = der_metric()
    bound_metric = der_metric()  # the same files with the reference's who-is-who
    results: list[DiarizationFile] = []
    started = time.perf_counter()
    print(f"== diarization: {backend.name} on {folder}")
    print(f"   hypotheses -> {out}")
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        for f in annotated_diarization(folder, limit, Path(tmp)):
            bound = None
            if isinstance(backend, PretrainedDiarization):  # diarize(), in its two steps
                duration = len(f.samples) / RATE
                chunks = [backend.features(f.samples, RATE)]
                output = backend.finish(chunks, duration)
                if chunks[0]["segmentation"].any():
                    right = backend.lay_out(
                        chunks, reference_clusters(backend, chunks, f.reference), duration
                    )
                    bound = der(f.reference, right.segments, f.scored, bound_metric)
            else:
                output = backend.diarize(f.samples, RATE)
            (out / f"{f.uri}.rttm").write_text(rttm_text(f.uri, output.segments))
            results.append(
                score_diarization_file(f.uri, f.samples, f.reference, output, f.scored, metric, bound)
            )
    if not results:
        print("   no files scored")
        return
    print_diarization(results, metric, time.perf_counter() - started, longform, bound_metric)


def speaker_count_error(r: DiarizationFile) -> float | None:
    """(estimated - reference) / reference speakers, in %: + is over-clustering, - collapse."""
    return ratio(100.0 * (r.n_est - r.n_ref), r.n_ref)


def print_diarization(
    results: list[DiarizationFile], metric, seconds: float, longform: bool = False, bound_metric=None
) -> None:
    w = max(24, *(len(r.uri) for r in results))
    print(
        f"\n{'file':<{w}} {'scored s':>8} {'DER %':>6} {'miss %':>6} {'FA %':>6} {'conf %':>6} {'DER* %':>6}"
        "  spk est/ref" + ("  spk err %" if longform else "")
    )
    for r in results:
        mark = "ok" if r.n_est == r.n_ref else ""
        error = f"  {signed(speaker_count_error(r), 9)}" if longform else ""
        print(
            f"{r.uri:<{w}} {r.scored_s:>8.1f} {fmt(r.der)} {fmt(r.miss)} {fmt(r.false_alarm)}"
            f" {fmt(r.confusion)} {fmt(r.bound)}  {r.n_est:>3}/{r.n_ref:<3}{error} {mark}"
        )
    right = sum(r.n_est == r.n_ref for r in results)
    speech = metric.accumulated_["total"]
    total = f"{100.0 * abs(metric):.2f} %" if speech > 0 else "n/a"  # abs(): accumulated over files
    print(
        f"TOTAL DER {total} (collar {COLLAR_S} s, overlap scored, "
        f"{speech:.1f} s scored reference speech); "
        f"speaker count right in {right}/{len(results)} files"
    )
    if bound_metric is not None and bound_metric.accumulated_["total"] > 0:
        confusion = 100.0 * bound_metric.accumulated_["confusion"] / bound_metric.accumulated_["total"]
        print(
            "DER* (who-is-who right: each local speaker given the reference speaker it covers most) "
            f"{100.0 * abs(bound_metric):.2f} %, confusion {confusion:.2f} %"
        )

    if longform:
        for r in results:
            error = speaker_count_error(r)
            within = "n/a" if error is None else ("yes" if abs(error) <= 25 else "no")
            print(
                f"SPEAKERS {r.uri}: estimated {r.n_est}, reference {r.n_ref},"
                f" error {signed(error, 0)} % (goal within ±25 %: {within})"
            )

    print(
        f"\n{'file':<{w}} {'usable P':>9} {'usable R':>9} {'usable s':>9}"
        f" {'emb same':>9} {'emb diff':>9} {'ordered':>8} {'ovl P':>6} {'ovl R':>6} {'ovl ref s':>9}"
    )
    for r in results:
        usable_s = (r.usable.tp + r.usable.fp) * HOP_S
        print(
            f"{r.uri:<{w}} {fmt(r.usable.precision, width=9)} {fmt(r.usable.recall, width=9)}"
            f" {usable_s:>9.1f} {fmt(mean(r.same), width=9)} {fmt(mean(r.diff), width=9)}"
            f" {fmt(ordered_fraction(r.same, r.diff), width=8)}"
            f" {fmt(r.overlap.precision)} {fmt(r.overlap.recall)}"
            f" {(r.overlap.tp + r.overlap.fn) * HOP_S:>9.1f}"
        )
    pooled = sum((r.usable for r in results), Counts())
    print(
        f"POOLED usable precision {fmt(pooled.precision, width=0)} recall {fmt(pooled.recall, width=0)}"
        f" ({(pooled.tp + pooled.fp) * HOP_S:.1f} s usable vs {(pooled.tp + pooled.fn) * HOP_S:.1f} s"
        f" reference single-speaker speech, min {MIN_USABLE_S} s, music removed)"
    )
    overlap = sum((r.overlap for r in results), Counts())
    print(
        f"POOLED overlap precision {fmt(overlap.precision, width=0)} recall {fmt(overlap.recall, width=0)}"
        f" ({(overlap.tp + overlap.fp) * HOP_S:.1f} s hypothesis vs {(overlap.tp + overlap.fn) * HOP_S:.1f} s"
        f" reference with 2+ speakers, {HOP_S * 1000:g} ms frames, scored region)"
    )
    same = np.concatenate([r.same for r in results])
    diff = np.concatenate([r.diff for r in results])
    ordered = pooled_ordered_fraction([(r.same, r.diff) for r in results])
    ordered_by_pass = pooled_ordered_fraction([(r.pass_same, r.pass_diff) for r in results])
    print(
        f"POOLED embeddings (single-speaker stretches of reference turns > {MIN_EMBED_TURN_S:g} s,"
        " pairs within a file):"
        f" same {fmt(mean(same), width=0)} ± {fmt(std(same), width=0)} (n={len(same)}),"
        f" diff {fmt(mean(diff), width=0)} ± {fmt(std(diff), width=0)} (n={len(diff)}),"
        f" correctly ordered within a file {fmt(ordered, width=0)}"
        f" (a CAM++ pass per stretch instead: {fmt(ordered_by_pass, width=0)})"
    )
    print(f"({len(results)} files in {seconds:.0f} s)")


def pooled_ordered_fraction(files: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """ordered_fraction over every file's (same, diff) pairs, pairs never mixing two
    files: recordings differ in their similarity scale, and a speaker is only ever
    compared with the other speakers of its own recording."""
    pairs = [(len(same) * len(diff), ordered_fraction(same, diff)) for same, diff in files]
    total = sum(n for n, f in pairs if f is not None)
    return sum(n * f for n, f in pairs if f is not None) / total if total else None


def mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def std(values: np.ndarray) -> float | None:
    return float(np.std(values)) if len(values) else None


# ----------------------------------------------------------------------------- music


@dataclass
class MusicFile:
    name: str
    duration_s: float
    music_ref_s: float
    flagged_s: float
    counts: Counts
    noise_frames: int = 0
    noise_flagged: int = 0
    no_music_frames: int = 0  # all frames, if the file has no music label at all
    no_music_flagged: int = 0


def score_music_file(name: str, n_frames: int, regions: list[MusicRegion], labels) -> MusicFile:
    """Frame-level music figures of one file.

    Noise frames count only where no music label overlaps them: a noise label under
    music is not a false alarm.
    """
    flagged = frame_mask([(r.start, r.end) for r in regions], n_frames)
    music = frame_mask([(s, e) for s, e, lab in labels if lab == "music"], n_frames)
    noise = frame_mask([(s, e) for s, e, lab in labels if lab == "noise"], n_frames) & ~music
    has_music = bool(music.any())
    return MusicFile(
        name=name,
        duration_s=n_frames * HOP_S,
        music_ref_s=music.sum() * HOP_S,
        flagged_s=flagged.sum() * HOP_S,
        counts=Counts.of(flagged, music),
        noise_frames=int(noise.sum()),
        noise_flagged=int((noise & flagged).sum()),
        no_music_frames=0 if has_music else n_frames,
        no_music_flagged=0 if has_music else int(flagged.sum()),
    )


def evaluate_music(folder: Path, limit: int | None) -> None:
    """Run the music detector on every labelled file of ``folder`` and print the table."""
    from core.analysis import music

    results: list[MusicFile] = []
    started = time.perf_counter()
    print(f"== music: {music.BACKEND_NAME} on {folder}")
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        for name, labels_path, samples in annotated_samples(folder, "labels", ".csv", limit, Path(tmp)):
            n_frames = int(round(len(samples) / RATE / HOP_S))
            regions = music.detect_music(samples, RATE)
            results.append(score_music_file(name, n_frames, regions, read_labels(labels_path)))
    if not results:
        print("   no files scored")
        return
    w = max(24, *(len(r.name) for r in results))
    print(
        f"\n{'file':<{w}} {'dur s':>6} {'music s':>7} {'flag s':>6} {'P':>5} {'R':>5} {'F1':>5}"
        f" {'noise->music':>12} {'flagged (no music)':>18}"
    )
    for r in results:
        print(
            f"{r.name:<{w}} {r.duration_s:>6.1f} {r.music_ref_s:>7.1f} {r.flagged_s:>6.1f}"
            f" {fmt(r.counts.precision, width=5)} {fmt(r.counts.recall, width=5)} {fmt(r.counts.f1, width=5)}"
            f" {fmt(ratio(r.noise_flagged, r.noise_frames), width=12)}"
            f" {fmt(ratio(r.no_music_flagged, r.no_music_frames), width=18)}"
        )
    pooled = sum((r.counts for r in results), Counts())
    noise = ratio(sum(r.noise_flagged for r in results), sum(r.noise_frames for r in results))
    false_alarm = ratio(sum(r.no_music_flagged for r in results), sum(r.no_music_frames for r in results))
    print(
        f"POOLED music precision {fmt(pooled.precision, width=0)} recall {fmt(pooled.recall, width=0)}"
        f" F1 {fmt(pooled.f1, width=0)}; noise flagged as music {fmt(noise, width=0)};"
        f" flagged in no-music files {fmt(false_alarm, width=0)}"
    )
    print(f"({len(results)} files in {time.perf_counter() - started:.0f} s)")


# ------------------------------------------------------------------------------ main


def make_backend(name: str, model: str | None):
    """The backend the diarize activity would build from these settings."""
    from core.analysis import exported
    from core.analysis.diarization import get_diarization_backend
    from core.service.settings import Settings

    # pyannote probes its embedding model with a few samples (one pooling frame): harmless
    warnings.filterwarnings("ignore", message=r".*degrees of freedom", category=UserWarning)

    overrides = {"diarization_backend": name}
    if model:
        overrides["pyannote_model"] = model
    settings = Settings(**overrides)
    exported.use(settings.inference, settings.model_cache_dir, settings.cpu_bf16)
    print(f"models run in {exported.describe()}")
    return get_diarization_backend(settings)


def default_backend() -> str:
    """The settings' default backend, so this tool scores what production runs unless told
    otherwise; the names a backend may have are core.analysis.diarization's to decide (an unknown
    one is refused there, with the known ones listed)."""
    from core.service.settings import Settings

    return Settings.model_fields["diarization_backend"].default


def evaluate_longform(args, backend, out: Path) -> None:
    """Build the long-form recordings (benchmarks.longform) and score them like the dev set."""
    from benchmarks.longform import build_longform

    data = out / "longform-data"
    limit = args.longform_limit or args.limit
    print(f"== long-form recordings (seed {args.seed}) -> {data}")
    build_longform(data, args.diarization, args.music, args.seed, limit)
    evaluate_diarization(data, backend, out, None, longform=True)


def evaluate_podcasts(args, backend, out: Path) -> None:
    """Build the podcast-like set (benchmarks.longform.PODCASTS) and score it like the dev set."""
    from benchmarks.longform import build_podcasts

    data = out / "podcast-data"
    print(f"== podcast-like recordings (seed {args.seed}) -> {data}")
    build_podcasts(data, args.diarization, args.music, args.seed)
    evaluate_diarization(data, backend, out, None, longform=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diarization", type=Path, help="folder with audio/, rttm/, optional uem/")
    parser.add_argument("--music", type=Path, help="folder with audio/ and labels/")
    parser.add_argument("--backend", help="diarization backend (default: the settings' default)")
    parser.add_argument("--pyannote-model", help="hub id or local directory (default: settings)")
    parser.add_argument("--out", type=Path, help="where hypothesis RTTMs go (default: a new temp dir)")
    parser.add_argument("--limit", type=int, help="score only the first N files of each folder")
    parser.add_argument(
        "--longform",
        action="store_true",
        help="build long recordings from the --diarization files (default: the shared eval set), "
        "with music from --music (default: music/ beside it), into OUT/longform-data and score "
        "them instead of the short files",
    )
    parser.add_argument(
        "--podcasts",
        action="store_true",
        help="build the podcast-like set (2, 3, 4 and 6 voices over 30-60 min) from the "
        "--diarization files into OUT/podcast-data and score it instead of the short files",
    )
    parser.add_argument("--seed", type=int, default=0, help="long-form and podcast layout seed (default 0)")
    parser.add_argument(
        "--longform-limit", type=int, help="long-form from the first N files only, laid out once (short run)"
    )
    args = parser.parse_args(argv)
    if args.longform and args.podcasts:
        parser.error("--longform and --podcasts are two runs: give one")
    if not args.diarization and not args.music and not args.longform and not args.podcasts:
        parser.error("give --diarization DIR and/or --music DIR, or --longform, or --podcasts")
    for name in ("limit", "longform_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for folder in (args.diarization, args.music):
        if folder and not (folder / "audio").is_dir():
            parser.error(f"{folder} has no audio/ folder")

    args.backend = args.backend or default_backend()
    built = args.longform or args.podcasts  # recordings built from the --diarization files
    if args.diarization or built:
        try:
            backend = make_backend(args.backend, args.pyannote_model)
        except Exception as exc:  # a model that cannot load: say why, no traceback
            print(f"cannot build the {args.backend} backend: {exc}", file=sys.stderr)
            return 2
        out = args.out or Path(tempfile.mkdtemp(prefix="quality-hyp-"))
        if args.longform:
            evaluate_longform(args, backend, out)
        elif args.podcasts:
            evaluate_podcasts(args, backend, out)
        else:
            evaluate_diarization(args.diarization, backend, out, args.limit)
        if args.music and not built:
            print()
    if args.music and not built:
        evaluate_music(args.music, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
