"""Time and peak memory of the who-is-who step on the longest episode allowed.

    python -m benchmarks.clustering [--hours 6] [--seed 0] [--features FILE] [--source-minutes N]

Why: the global step (core/analysis/diarization/clustering.py) is the only part of
diarization whose work grows faster than the recording: it compares local speakers
with each other, and a 6-hour episode has tens of thousands of them. Its goal is a
minute and 2 GB on 2 cores for the longest episode allowed, whatever the length.

The episode: podcast-6v (benchmarks.longform, six voices over an hour) goes through the
pretrained backend chunk by chunk as the diarize stage runs it, and its chunks' local
speakers are laid end to end until they cover ``--hours`` (window starts shifted), so
the clustering sees the arrays a real episode of that length gives it. ``--features``
keeps the extracted hour in a file and reuses it (the extraction takes minutes).

Printed, measured in a fresh process so that nothing else's memory counts: local
speakers (all, and those clean enough to cluster), speakers found, then the wall and
CPU seconds and the peak memory growth of the clustering alone and of ``finish``
(clustering and laying out the turns), and one summary line starting ``clustering:``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.eval_set import RATE
from core.analysis.diarization import FIRST_FRAME, FRAMES, ChunkFeatures
from core.service.memory import status_mib

GOAL_S = 60.0
GOAL_MIB = 2048.0
SOURCE = "podcast-6v"


def extract_hour(seed: int, minutes: float | None = None) -> tuple[list[ChunkFeatures], float]:
    """The source podcast's chunk features (its first ``minutes`` only, if given), as the
    diarize stage extracts them."""
    from benchmarks.longform import EVAL, PODCASTS, build_podcast, load_interludes, load_sources
    from core.analysis.diarization.pretrained import PretrainedDiarization
    from core.service.settings import Settings

    with tempfile.TemporaryDirectory(prefix="clustering-") as tmp:
        sources = load_sources(EVAL / "diarization", None, Path(tmp))
        clips = load_interludes(EVAL / "music", Path(tmp))
    podcast = next(p for p in PODCASTS if p.uri == SOURCE)
    samples = build_podcast(podcast, sources, clips, seed).samples
    if minutes is not None:
        samples = samples[: int(minutes * 60 * RATE)]
    backend = PretrainedDiarization()
    chunk_s = Settings.model_fields["chunk_s"].default
    duration = len(samples) / RATE
    chunks = []
    started = time.perf_counter()
    for index in range(int(np.ceil(duration / chunk_s))):
        features = backend.extract(samples, RATE, index * chunk_s, (index + 1) * chunk_s)
        features.pop(FRAMES)  # the embed stage's, not the clustering's
        features.pop(FIRST_FRAME)
        chunks.append(features)
    print(f"   extracted {duration / 60:.0f} min in {time.perf_counter() - started:.0f} s")
    return chunks, duration


def tile(chunks: list[ChunkFeatures], duration: float, hours: float) -> tuple[list[ChunkFeatures], float]:
    """The hour's chunks again and again, shifted, until they cover ``hours``."""
    copies = int(np.ceil(hours * 3600 / duration))
    tiled = []
    for k in range(copies):
        for c in chunks:
            shifted = dict(c)
            shifted["window_start_s"] = c["window_start_s"] + k * duration
            tiled.append(shifted)
    return tiled, copies * duration  # type: ignore[return-value]


def _reset_peak() -> bool:
    """Resets the process's peak RSS (Linux: /proc/self/clear_refs), so a peak measured
    next is the call's own; False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _measured(call):
    """``call()``'s result, and its wall and CPU seconds and peak memory growth (MiB) over
    the memory held before it (and whether that peak is the call's own)."""
    before = status_mib("self", "VmRSS")
    exact = _reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return result, (wall, cpu, status_mib("self", "VmHWM") - before, exact)


def _measure(path: str, queue) -> None:
    """In a fresh process: the clustering alone, then ``finish``, each timed and its
    peak memory growth over the memory held before it."""
    from core.analysis.diarization import clustering
    from core.analysis.diarization.pretrained import PretrainedDiarization, _clean_seconds

    with open(path, "rb") as f:
        chunks, duration = pickle.load(f)
    backend = PretrainedDiarization()
    backend.frames  # noqa: B018  (loads the segmentation model, outside what is measured)
    segmentation = np.concatenate([c["segmentation"] for c in chunks])
    embeddings = np.concatenate([c["embeddings"] for c in chunks])
    figures = {}
    (_, centroids), figures["cluster"] = _measured(lambda: backend.cluster(segmentation, embeddings))
    _, figures["finish"] = _measured(lambda: backend.finish(chunks, duration))
    figures["speakers"] = len(centroids)
    figures["local"] = int(segmentation.any(axis=1).sum())
    clean = _clean_seconds(segmentation, backend.frames[1])
    figures["usable"] = int(clustering.usable(embeddings, clean, segmentation.any(axis=1)).sum())
    queue.put(figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=6.0, help="episode length to lay out (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="podcast layout seed (default 0)")
    parser.add_argument("--features", type=Path, help="keep the extracted hour here, and reuse it")
    parser.add_argument(
        "--source-minutes", type=float, help="extract only the podcast's first N minutes (a short run)"
    )
    args = parser.parse_args(argv)
    if args.hours <= 0 or (args.source_minutes is not None and args.source_minutes <= 0):
        parser.error("--hours and --source-minutes must be positive")

    if args.features and args.features.is_file():
        with open(args.features, "rb") as f:
            hour, duration = pickle.load(f)
        print(f"== {SOURCE}: features from {args.features}")
    else:
        print(f"== {SOURCE}: extracting (seed {args.seed})")
        hour, duration = extract_hour(args.seed, args.source_minutes)
        if args.features:
            with open(args.features, "wb") as f:
                pickle.dump((hour, duration), f)
    chunks, total = tile(hour, duration, args.hours)
    with tempfile.TemporaryDirectory(prefix="clustering-") as tmp:
        path = str(Path(tmp) / "episode.pkl")
        with open(path, "wb") as f:
            pickle.dump((chunks, total), f)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=_measure, args=(path, queue))
        child.start()
        figures = queue.get()
        child.join()

    print(
        f"   episode {total / 3600:.2f} h: {figures['local']} local speakers, {figures['usable']} clean "
        f"enough to cluster; {figures['speakers']} speakers found"
    )
    for name in ("cluster", "finish"):
        wall, cpu, peak, exact = figures[name]
        note = "" if exact else " (peak since start: the kernel kept the process's peak)"
        print(f"   {name:<8} {wall:6.1f} s wall {cpu:6.1f} s CPU  peak +{peak:.0f} MiB{note}")
    wall, _, peak, _ = figures["cluster"]
    met = wall <= GOAL_S and peak <= GOAL_MIB
    print(
        f"clustering: {total / 3600:.2f} h, {figures['local']} local speakers, {wall:.1f} s, +{peak:.0f} MiB "
        f"(goal <= {GOAL_S:.0f} s and {GOAL_MIB:.0f} MiB: {'met' if met else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
