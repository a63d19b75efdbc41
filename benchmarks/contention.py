"""What a model call costs when the machine's other cores are busy, by thread policy.

    python -m benchmarks.contention [--minutes 2] [--audio FILE] [--inference onnxruntime|torch]

A worker never has the machine to itself: its other slots, the other stage of the same
video and ffmpeg decoding the next one all want cores. Each model (segmentation-3.0,
the CAM++ trunk, DNSMOS) is timed on M minutes of real speech four ways: with torch's
and onnxruntime's default pool (every core) or with the threads the worker gives each
call (core.analysis.threads: cores over slots, one on a two-slot machine), each alone
and beside a neighbour process that keeps one core busy. Printed: CPU and wall seconds
per audio minute of this process, and the busy/alone ratio of CPU (the goal: within
10 % with the worker's threads). ``--inference`` picks the runtime of segmentation and the
CAM++ trunk (core.analysis.exported; default: the settings').
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.speed import build_test_audio, decode, source_recordings
from core.analysis import threads

NEIGHBOUR = "while True: pass"  # one core, busy for as long as it lives


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def models(samples: np.ndarray) -> dict[str, Callable[[], object]]:
    """Each model over the whole audio, as the stages call it (loaded and warmed up)."""
    from core.analysis import campplus, dnsmos
    from core.analysis.diarization.pretrained import PretrainedDiarization

    backend = PretrainedDiarization()
    starts = backend.window_starts(len(samples))
    scorer = dnsmos.Dnsmos()
    spans = [(float(s), float(s) + 20.0) for s in np.arange(0.0, len(samples) / 16_000 - 20.0, 30.0)]
    calls = {
        "segmentation-3.0": lambda: backend._segment(samples, starts, 8),
        "CAM++ trunk": lambda: campplus.frame_features(samples, 0, len(samples)),
        "DNSMOS (a window per 30 s)": lambda: scorer.dnsmos(samples, 16_000, spans),
    }
    clip = samples[: 16_000 * 12]
    backend._segment(clip, backend.window_starts(len(clip)), 8)  # load and warm up
    campplus.frame_features(clip, 0, len(clip))
    return calls


def run(minutes: float, audio: Path | None, inference: str) -> int:
    from core.analysis import exported

    with tempfile.TemporaryDirectory(prefix="contention-") as tmp:
        test_file, _ = build_test_audio(source_recordings(audio), minutes, Path(tmp))
        samples = decode(test_file, Path(tmp))
    cores = threads.cores()
    policies = {f"a pool of every core ({cores})": cores, "worker's share (1 thread)": 1}
    print(
        f"contention: {minutes:g} min of speech, {cores} cores, models in {inference};"
        " neighbour: a process spinning on one core"
    )
    columns = ("alone cpu/min", "busy cpu/min", "busy wall/min")
    print(f"{'model':28} {'threads':28} " + " ".join(f"{c:>13}" for c in columns) + f" {'ratio':>6}")
    for label, count in policies.items():
        threads.use(count)
        exported.use(inference)  # onnxruntime sessions built anew, under this policy
        calls = models(samples)
        for name, call in calls.items():
            alone = _timed(call)
            neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR])
            try:
                time.sleep(0.5)
                busy = _timed(call)
            finally:
                neighbour.kill()
                neighbour.wait()
            print(
                f"{name:28} {label:28} {alone[0] / minutes:13.2f} {busy[0] / minutes:13.2f}"
                f" {busy[1] / minutes:13.2f} {busy[0] / alone[0]:6.2f}"
            )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--audio", type=Path, help="a recording to use instead of the eval set")
    parser.add_argument("--inference", choices=("onnxruntime", "torch"), help="default: the settings'")
    args = parser.parse_args()
    from core.service.settings import Settings

    sys.exit(run(args.minutes, args.audio, args.inference or Settings().inference))


if __name__ == "__main__":
    main()
