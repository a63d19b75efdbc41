"""The measuring tools run end to end on a small copy of the eval data and print well-formed output.

Why: benchmarks.quality and benchmarks.speed are how thresholds and backends get
judged; if they break silently (a changed core signature, a table that no longer
parses) nobody notices until a decision is made on a wrong figure. The quality tool's DER
is checked twice: against the same DER computed here from the hypotheses it wrote (its
scoring), and against the figure measured on these two files with a stated tolerance
(the backend it runs). Elsewhere only the shape of the output is asserted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.quality import Counts, ordered_fraction
from core.contracts.rttm import read_rttm

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"
DIARIZATION_FILES = ["falcon_test", "pyannote_debug_dev00"]  # one without a UEM, one with
MUSIC_FILES = ["librosa_libri1", "synthradio_example-1"]  # one without music, one with
NUMBER = r"(\d+(?:\.\d+)?|n/a)"
# Floors from the figures measured on these files 2026-12-06 minus a margin: usable
# precision 0.96, music F1 0.98 (synthradio_example-1 and pooled), music flagged in the
# speech-only file 0.00
USABLE_PRECISION_FLOOR = 0.90
MUSIC_F1_FLOOR = 0.85


def _copy_subset(src: Path, dst: Path, names: list[str], subfolders: dict[str, str]) -> Path:
    """Copy ``names`` from an eval folder into ``dst`` in the same layout (missing extras skipped)."""
    for sub in ("audio", *subfolders):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        for audio in (src / "audio").glob(f"{name}.*"):
            shutil.copy(audio, dst / "audio" / audio.name)
        for sub, ext in subfolders.items():
            if (src / sub / f"{name}.{ext}").is_file():
                shutil.copy(src / sub / f"{name}.{ext}", dst / sub / f"{name}.{ext}")
    return dst


def _run(*args: str) -> str:
    env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _row(output: str, name: str) -> list[str]:
    """Every table row that starts with ``name``, split into columns."""
    return [line.split() for line in output.splitlines() if line.split()[:1] == [name]]


def rescore(diar: Path, hyp: Path) -> tuple[dict[str, float], float]:
    """DER % per file and pooled, computed here from the RTTMs (and UEMs) on disk with
    pyannote.metrics as the README states it: 0.5 s collar, overlap scored, the whole
    file where there is no UEM."""
    import soundfile as sf
    from pyannote.core import Annotation, Timeline
    from pyannote.core import Segment as PSegment
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(path: Path) -> Annotation:
        ann = Annotation()
        for k, t in enumerate(read_rttm(path)):
            ann[PSegment(t.start, t.end), k] = t.speaker
        return ann

    pooled = DiarizationErrorRate(collar=0.5, skip_overlap=False)
    per_file = {}
    for uri in DIARIZATION_FILES:
        uem = diar / "uem" / f"{uri}.uem"
        if uem.is_file():
            regions = [
                tuple(map(float, line.split()[2:4])) for line in uem.read_text().splitlines() if line.strip()
            ]
        else:
            regions = [(0.0, sf.info(str(diar / "audio" / f"{uri}.wav")).duration)]
        scored = Timeline([PSegment(s, e) for s, e in regions])
        reference, hypothesis = annotation(diar / "rttm" / f"{uri}.rttm"), annotation(hyp / f"{uri}.rttm")
        per_file[uri] = 100 * pooled(reference, hypothesis, uem=scored)
    return per_file, 100 * abs(pooled)


def test_quality_tool_prints_per_file_and_pooled_figures(tmp_path: Path) -> None:
    diar = _copy_subset(
        EVAL / "diarization", tmp_path / "diar", DIARIZATION_FILES, {"rttm": "rttm", "uem": "uem"}
    )
    music = _copy_subset(EVAL / "music", tmp_path / "music", MUSIC_FILES, {"labels": "csv"})
    hyp = tmp_path / "hyp"
    out = _run("benchmarks.quality", "--diarization", str(diar), "--music", str(music), "--out", str(hyp))

    for uri in DIARIZATION_FILES:
        der_row, usable_row = _row(out, uri)  # one row in each diarization table
        assert re.fullmatch(NUMBER, der_row[2]), der_row  # DER %
        assert re.fullmatch(NUMBER, der_row[6]), der_row  # DER* (the reference's who-is-who)
        assert re.fullmatch(r"\d+/\d+", der_row[7]), der_row  # estimated/reference speakers
        assert all(re.fullmatch(NUMBER, v) for v in usable_row[1:]), usable_row
        turns = read_rttm(hyp / f"{uri}.rttm")  # written and parseable
        assert all(t.end > t.start >= 0 for t in turns)
    total = re.search(r"^TOTAL DER (\d+(?:\.\d+)?) %.*right in (\d+)/(\d+) files", out, re.M)
    assert total and total.group(3) == "2", out
    bound = re.search(rf"^DER\* \(who-is-who right: .*\) {NUMBER} %, confusion {NUMBER} %$", out, re.M)
    assert bound, out
    # the printed DER is the DER of the hypotheses it wrote, scored independently here
    per_file, pooled = rescore(diar, hyp)
    for uri in DIARIZATION_FILES:
        assert abs(float(_row(out, uri)[0][2]) - per_file[uri]) <= 0.005, (uri, per_file[uri], out)
    assert abs(float(total.group(1)) - pooled) <= 0.005, (pooled, out)
    # and it is the known figure: 4.36 % measured 2026-12-07 (falcon_test 0.00, dev00 6.50;
    # 13.12 before issue 27's block re-check); the backend is deterministic on a CPU,
    # ±3 points leaves room for another BLAS
    assert abs(float(total.group(1)) - 4.36) <= 3.0, out
    usable = re.search(rf"^POOLED usable precision {NUMBER} recall {NUMBER}", out, re.M)
    assert usable and float(usable.group(1)) >= USABLE_PRECISION_FLOOR, out
    assert re.search(rf"^POOLED embeddings .* correctly ordered within a file {NUMBER}", out, re.M), out

    (speech_only,) = _row(out, "librosa_libri1")
    assert speech_only[6] == "n/a", speech_only  # no music in it: no F1, and none flagged below
    (mixed,) = _row(out, "synthradio_example-1")
    assert float(mixed[6]) >= MUSIC_F1_FLOOR, mixed
    pooled = re.search(r"^POOLED music precision \S+ recall \S+ F1 (\S+);.* no-music files (\S+)$", out, re.M)
    assert pooled and float(pooled.group(1)) >= MUSIC_F1_FLOOR and float(pooled.group(2)) <= 0.05, out


def test_speed_tool_prints_every_stage(tmp_path: Path) -> None:
    out = _run("benchmarks.speed", "--minutes", "0.5")
    assert re.search(r"\d+ intra-op", out) and re.search(r"embedding batch \d+", out), out
    for stage in (
        "decode/resample",
        "speech activity",
        "local segmentation",
        "segmentation + CAM++",
        "clustering",
        "diarization, step",
        "segment embeddings",
        "music detection",
        "PIPELINE",
    ):
        line = next((ln for ln in out.splitlines() if ln.strip().startswith(stage)), None)
        assert line is not None, f"no {stage!r} row:\n{out}"
        numbers = re.findall(r"\s(\d+\.\d{3})\s", line + " ")
        assert len(numbers) == 2, line  # cpu and wall seconds per audio minute


def test_frame_figures_never_divide_by_zero() -> None:
    """Nothing flagged and nothing to find: every figure is n/a (None), not an error."""
    import numpy as np

    empty = Counts.of(np.zeros(10, bool), np.zeros(10, bool))
    assert (empty.precision, empty.recall, empty.f1) == (None, None, None)
    missed = Counts.of(np.zeros(10, bool), np.ones(10, bool))
    assert (missed.precision, missed.recall, missed.f1) == (None, 0.0, 0.0)
    assert ordered_fraction(np.array([0.9]), np.array([])) is None
    assert ordered_fraction(np.array([0.9, 0.5]), np.array([0.5, 0.1])) == 0.875


def test_speed_tool_times_both_backends_in_one_run(tmp_path: Path) -> None:
    """The pyannote backend (built locally, random embedding: speed only) side by side with
    the default one, on the same audio, each with its whole-pipeline line."""
    out = _run("benchmarks.speed", "--backend", "both", "--minutes", "0.25")
    assert "ONLY SPEED IS MEANINGFUL" in out, out
    pyannote_rows = [ln for ln in out.splitlines() if ln.startswith("pyannote batch")]
    assert any("(backend default)" in ln for ln in pyannote_rows) and len(pyannote_rows) >= 2, out
    pipelines = [ln for ln in out.splitlines() if ln.startswith("PIPELINE")]
    assert [ln.split("diarization: ")[1].split(",")[0] for ln in pipelines] == ["pretrained", "pyannote"], out
    for line in (
        pyannote_rows
        + pipelines
        + [next(ln for ln in out.splitlines() if ln.startswith("diarization, step"))]
    ):
        numbers = re.findall(r"\s(\d+\.\d{3})\s", line + " ")
        assert len(numbers) == 2 and all(float(n) > 0 for n in numbers), line
