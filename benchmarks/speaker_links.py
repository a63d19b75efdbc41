"""Speakers across videos: does linking join the same person and keep different people
apart, and what does its index cost at fleet scale.

    python -m benchmarks.speaker_links --eval DIR [--min-speech S] [--backend NAME]
    python -m benchmarks.speaker_links --members N [--people P] [--seed N]

``--eval``: every annotated recording of DIR (laid out like ../shared/eval/diarization)
is one video. Each is diarized by the configured backend, its segments embedded and its
local speakers described as production links them (core.corpus.speakers.local_speakers);
each local speaker's true identity is the reference speaker it covers most. AMI's
participant ids (MEE009, FEE087, ...) name one person in every meeting, so two videos'
speakers are the same person when their AMI ids match; every other reference label is
one person in its own file. Printed: over all pairs of local speakers of different
videos, precision and recall of "cosine at least t" for a sweep of t, the same for the
global ids SpeakerIndex gives (videos in name order and reversed), and the margin (the
least cosine of a same-person pair against the greatest of a different-person pair).

``--members``: N synthetic local speakers (3 per video) drawn from P people with a
long-tailed popularity (a few hosts in many videos), linked through the real index in
its chunks: time and peak memory of the whole build, the time of one chunk's queries
against the full index, the serialized index's size, and how often a person's members
share one global id (on vectors cleaner than real voices: a check of the index's
recall at scale, not of linking accuracy).
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.eval_set import RATE, annotated_diarization
from core.analysis.intervals import overlaps
from core.contracts.metadata import SegmentRow
from core.contracts.video import Segment
from core.corpus.speakers import (
    CHUNK,
    DIM,
    LINK_COSINE,
    MIN_SPEECH_S,
    Link,
    LocalSpeaker,
    SpeakerIndex,
    local_speakers,
)

AMI_PARTICIPANT = re.compile(r"[MF][EO][EO]\d{3}")
SWEEP = [round(t, 2) for t in np.arange(0.30, 0.951, 0.05)]


def covered(segments: list[Segment], label: str, reference: list[Segment]) -> str | None:
    """The reference speaker a local speaker's segments cover most."""
    seconds: dict[str, float] = {}
    for s in (s for s in segments if s.speaker == label):
        for r in reference:
            shared = min(s.end, r.end) - max(s.start, r.start)
            if shared > 0:
                seconds[r.speaker] = seconds.get(r.speaker, 0.0) + shared
    return max(seconds, key=lambda k: seconds[k]) if seconds else None


def eval_speakers(folder: Path, backend_name: str | None) -> list[tuple[LocalSpeaker, str]]:
    from benchmarks.quality import default_backend, make_backend
    from core.analysis.speaker_embeddings import embed_segments

    backend = make_backend(backend_name or default_backend(), None)
    found: list[tuple[LocalSpeaker, str]] = []
    with tempfile.TemporaryDirectory(prefix="links-") as tmp:
        for f in annotated_diarization(folder, None, Path(tmp)):
            segments = backend.diarize(f.samples, RATE).segments
            rows = [
                SegmentRow(start=s.start, end=s.end, speaker=s.speaker, overlap=bool(o))
                for s, o in zip(segments, overlaps(segments), strict=True)
            ]
            embeddings = embed_segments(f.samples, segments)
            for speaker in local_speakers(f.uri, rows, embeddings):
                who = covered(segments, speaker.label, f.reference)
                if who is not None:
                    truth = who if AMI_PARTICIPANT.fullmatch(who) else f"{f.uri}:{who}"
                    found.append((speaker, truth))
    return found


def pair_table(speakers: list[tuple[LocalSpeaker, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and same-person flag of every pair of speakers of different videos."""
    cosines, same = [], []
    for i, (a, ta) in enumerate(speakers):
        for b, tb in speakers[i + 1 :]:
            if a.video_id != b.video_id:
                cosines.append(float(a.centroid @ b.centroid))
                same.append(ta == tb)
    return np.array(cosines), np.array(same, dtype=bool)


def precision_recall(predicted: np.ndarray, same: np.ndarray) -> tuple[float | None, float | None]:
    hits = int((predicted & same).sum())
    precision = hits / int(predicted.sum()) if predicted.any() else None
    recall = hits / int(same.sum()) if same.any() else None
    return precision, recall


def fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.2f}"


def linked_pairs(speakers: list[tuple[LocalSpeaker, str]], links: list[Link]) -> np.ndarray:
    ids = {(link.video_id, link.label): link.speaker_id for link in links}
    joined = []
    for i, (a, _) in enumerate(speakers):
        for b, _ in speakers[i + 1 :]:
            if a.video_id != b.video_id:
                joined.append(ids[(a.video_id, a.label)] == ids[(b.video_id, b.label)])
    return np.array(joined, dtype=bool)


def run_eval(folder: Path, min_speech_s: float, backend: str | None) -> None:
    found = eval_speakers(folder, backend)
    speakers = [(s, t) for s, t in found if s.speech_s >= min_speech_s]
    cosines, same = pair_table(speakers)
    videos = len({s.video_id for s, _ in found})
    print(
        f"== speakers across videos: {videos} videos, {len(found)} local speakers, "
        f"{len(speakers)} with >= {min_speech_s:g} s of clean speech; "
        f"{int(same.sum())} same-person pairs of {len(same)} across videos"
    )
    if not len(same):
        return
    print("   t      precision recall")
    for t in SWEEP:
        p, r = precision_recall(cosines >= t, same)
        print(f"   {t:.2f}   {fmt(p)}     {fmt(r)}")
    if same.any() and (~same).any():
        least_same, most_different = float(cosines[same].min()), float(cosines[~same].max())
        print(
            f"   margin: least same-person cosine {least_same:.3f}, greatest different-person "
            f"{most_different:.3f} ({least_same - most_different:+.3f})"
        )
    for name, order in (("name order", speakers), ("reversed", speakers[::-1])):
        index = SpeakerIndex(min_speech_s=min_speech_s)
        by_video: dict[str, list[LocalSpeaker]] = {}
        for s, _ in order:
            by_video.setdefault(s.video_id, []).append(s)
        links = index.link(by_video.values())
        joined = linked_pairs(speakers, links)
        p, r = precision_recall(joined, same)
        people = len({link.speaker_id for link in links})
        print(
            f"   linked at {index.link_cosine:.2f} ({name}): precision {fmt(p)}, recall {fmt(r)}, "
            f"{people} global speakers for {len(set(t for _, t in speakers))} people"
        )


def synthetic_videos(members: int, people: int, seed: int) -> tuple[list[list[LocalSpeaker]], np.ndarray]:
    """Videos of 3 speakers each from a long-tailed popularity. A person's members scatter
    around their voice (cosine ~0.8 between two of them) and different people share a
    direction (~0.2, at most ~0.45): cleaner than real voices, which overlap more (the
    --eval figures), so this measures time and memory, not accuracy."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(DIM).astype(np.float32)
    common /= np.linalg.norm(common)
    voices = rng.standard_normal((people, DIM)).astype(np.float32)
    voices /= np.linalg.norm(voices, axis=1, keepdims=True)
    voices = 0.55 * common + voices
    voices /= np.linalg.norm(voices, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, people + 1) ** 0.8
    weights /= weights.sum()
    videos: list[list[LocalSpeaker]] = []
    truth = np.empty(members, dtype=np.int64)
    for v in range(members // 3):
        who = rng.choice(people, size=3, replace=False, p=weights)
        noise = rng.standard_normal((3, DIM)).astype(np.float32) * (0.5 / np.sqrt(DIM))
        vectors = voices[who] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        truth[3 * v : 3 * v + 3] = who
        videos.append([LocalSpeaker(f"v{v:07d}", f"SPEAKER_{k:02d}", vectors[k], 600.0) for k in range(3)])
    return videos, truth[: 3 * len(videos)]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_scale(members: int, people: int, seed: int) -> None:
    videos, truth = synthetic_videos(members, people, seed)
    print(f"== speaker index: {len(truth):,} local speakers of {people:,} people, chunks of {CHUNK}")
    before = peak_rss_mib()
    index = SpeakerIndex()
    started = time.perf_counter()
    cpu = time.process_time()
    links = index.link(videos[: -CHUNK // 3])
    build_s, build_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    links += index.link(videos[-CHUNK // 3 :])
    chunk_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="links-") as tmp:
        index.write(Path(tmp) / "index.faiss")
        size = (Path(tmp) / "index.faiss").stat().st_size
    print(
        f"   build: {build_s:.1f} s ({build_cpu:.1f} CPU s), peak memory {peak_rss_mib():,.0f} MiB "
        f"(+{peak_rss_mib() - before:,.0f} MiB over the synthetic data)"
    )
    last = CHUNK // 3 * 3
    print(f"   the last {last:,} speakers against {index.members - last:,} members: {chunk_s:.2f} s")
    print(f"   index file: {size / 2**20:,.0f} MiB")
    _, ids = np.unique([link.speaker_id for link in links], return_inverse=True)
    pairs = np.unique(np.stack([truth, ids], axis=1), axis=0, return_counts=True)
    (person, gid), count = pairs[0].T, pairs[1]
    members_of = np.bincount(truth)
    top = np.zeros(len(members_of), np.int64)
    np.maximum.at(top, person, count)  # each person's members under their most common id
    seen = members_of > 1
    mixed = int((np.bincount(gid) > 1).sum())  # global ids holding members of two people or more
    kept = top[seen].sum() / members_of[seen].sum()
    print(
        f"   a person's members under their most common global id: {kept:.3f} "
        f"(people seen more than once); global ids holding more than one person: {mixed} of {ids.max() + 1:,}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.speaker_links", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--eval", type=Path, help="an annotated diarization folder (../shared/eval/diarization)"
    )
    parser.add_argument(
        "--min-speech", type=float, default=MIN_SPEECH_S, help="clean speech a speaker needs (s)"
    )
    parser.add_argument("--backend", help="diarization backend (default: the settings')")
    parser.add_argument("--members", type=int, help="synthetic local speakers for the scale figure")
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.eval and not args.members:
        parser.error("give --eval DIR and/or --members N")
    print(f"link cosine {LINK_COSINE}, min clean speech {args.min_speech:g} s")
    if args.eval:
        run_eval(args.eval, args.min_speech, args.backend)
    if args.members:
        run_scale(args.members, args.people, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
