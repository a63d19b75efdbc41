"""The clustering's figures on every scored set at once, and their trade-off against its knobs.

    python -m benchmarks.who_is_who [--sets dev longform podcasts] [--cache DIR]
        [--set NAME=V1,V2 ...] [--seed N]

Why: the who-is-who step (core/analysis/diarization/clustering.py) decides from arrays
alone, so a change to it can be measured without running a network again. The networks'
features of each recording are extracted once (``--cache`` keeps them, with the built
long-form and podcast-like recordings, for the next run), then each setting of the knobs
is laid out and scored on the dev set, the long-form builds and the podcast-like set
together: a constant is only worth changing where all three agree.

``--set MERGE_SIMILARITY=0.75,0.8,0.85`` sweeps a constant of the clustering module
(several ``--set`` make a grid). Printed per setting and set: pooled DER and its parts,
the files whose speaker count is exact, and each file's count; a line starting
``who-is-who:`` sums each setting up. Scored as benchmarks.quality scores (0.5 s collar,
overlap scored, inside the UEM), so its DER figures are the same.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # pyannote telemetry: no network


from benchmarks.eval_set import RATE, annotated_diarization  # noqa: E402
from benchmarks.longform import EVAL, build_longform, build_podcasts  # noqa: E402
from benchmarks.quality import der_detail, der_metric  # noqa: E402
from core.analysis.diarization import FIRST_FRAME, FRAMES, ChunkFeatures  # noqa: E402
from core.contracts.rttm import Interval  # noqa: E402
from core.contracts.video import Segment  # noqa: E402

SETS = ("dev", "longform", "podcasts")
DEFAULT_CACHE = Path.home() / ".cache" / "podcast-pipeline" / "who-is-who"


@dataclass
class Scored:
    """One recording as the clustering sees it: its features, and what it is scored against."""

    uri: str
    chunks: list[ChunkFeatures]
    duration_s: float
    reference: list[Segment]
    scored: list[Interval]


def data_folder(name: str, cache: Path, seed: int) -> Path:
    """Where the set's annotated recordings are (the long ones built on first use)."""
    if name == "dev":
        return EVAL / "diarization"
    folder = cache / f"{name}-data-seed{seed}"
    if not (folder / "rttm").is_dir():
        print(f"== building {name} (seed {seed}) -> {folder}")
        (build_longform if name == "longform" else build_podcasts)(folder, seed=seed)
    return folder


def load_set(name: str, cache: Path, seed: int, backend) -> list[Scored]:
    """Each recording of the set with its features, extracted now or read from the cache."""
    folder = data_folder(name, cache, seed)
    features = cache / "features" / (name if name == "dev" else f"{name}-seed{seed}")
    features.mkdir(parents=True, exist_ok=True)
    out = []
    with tempfile.TemporaryDirectory(prefix="who-is-who-") as tmp:
        for f in annotated_diarization(folder, None, Path(tmp)):
            path = features / f"{f.uri}.pkl"
            if path.is_file():
                chunks = pickle.loads(path.read_bytes())
            else:
                print(f"   extracting {f.uri} ({len(f.samples) / RATE / 60:.1f} min)", flush=True)
                chunk = backend.features(f.samples, RATE)
                chunk.pop(FRAMES)  # the embed stage's, not the clustering's
                chunk.pop(FIRST_FRAME)
                chunks = [chunk]
                path.write_bytes(pickle.dumps(chunks))
            out.append(Scored(f.uri, chunks, len(f.samples) / RATE, f.reference, f.scored))
    return out


def settings_grid(pairs: list[str]) -> list[dict[str, float]]:
    """``NAME=V1,V2`` strings as every combination of their values ([{}]: the defaults)."""
    axes = []
    for pair in pairs:
        name, _, values = pair.partition("=")
        axes.append([(name, float(v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


@dataclass
class FileFigures:
    uri: str
    der: float  # %
    found: int  # speakers
    there: int

    def __str__(self) -> str:
        return f"{self.uri} {self.der:.1f}% {self.found}/{self.there}"


def score(backend, recordings: list[Scored]) -> tuple[dict[str, float], list[FileFigures]]:
    """Pooled DER parts (%) of the set, and each file's DER and speaker counts."""
    metric = der_metric()
    files = []
    for r in recordings:
        turns = backend.finish(r.chunks, r.duration_s).segments
        d = der_detail(r.uri, r.reference, turns, r.scored, metric)
        errors = d["missed detection"] + d["false alarm"] + d["confusion"]
        files.append(
            FileFigures(
                r.uri,
                100.0 * errors / max(d["total"], 1e-9),
                len({t.speaker for t in turns}),
                len({t.speaker for t in r.reference}),
            )
        )
    total = metric.accumulated_["total"]
    parts = {
        k: 100.0 * metric.accumulated_[key] / total
        for k, key in (("miss", "missed detection"), ("fa", "false alarm"), ("conf", "confusion"))
    }
    parts["der"] = parts["miss"] + parts["fa"] + parts["conf"]
    return parts, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"default {DEFAULT_CACHE}")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2", dest="knobs")
    parser.add_argument("--seed", type=int, default=0, help="long-form and podcast layout seed")
    args = parser.parse_args(argv)

    from core.analysis.diarization import clustering
    from core.analysis.diarization.pretrained import PretrainedDiarization

    for pair in args.knobs:
        name = pair.partition("=")[0]
        if "=" not in pair or not hasattr(clustering, name):
            parser.error(f"--set {pair}: not NAME=V1,V2 with NAME a constant of {clustering.__name__}")
    backend = PretrainedDiarization()
    sets = {name: load_set(name, args.cache, args.seed, backend) for name in args.sets}
    defaults = {name: getattr(clustering, name) for name in vars(clustering) if name.isupper()}
    for setting in settings_grid(args.knobs):
        for name, value in setting.items():
            setattr(clustering, name, type(defaults[name])(value))
        label = " ".join(f"{k}={v:g}" for k, v in setting.items()) or "defaults"
        summary = []
        for name, recordings in sets.items():
            parts, files = score(backend, recordings)
            exact = sum(f.found == f.there for f in files)
            print(
                f"{label} | {name}: DER {parts['der']:.2f} (miss {parts['miss']:.2f} fa {parts['fa']:.2f} "
                f"conf {parts['conf']:.2f}), count exact {exact}/{len(files)}: "
                + ", ".join(str(f) for f in files),
                flush=True,
            )
            summary.append(f"{name} {parts['der']:.2f}/{parts['conf']:.2f} {exact}/{len(files)}")
        print(f"who-is-who: {label}: " + ", ".join(summary) + " (DER/confusion %, counts exact)", flush=True)
        for name, value in defaults.items():
            setattr(clustering, name, value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
