"""Audio decoding and the two copies every video gets: 48 kHz original and 16 kHz analysis.

ffmpeg does all decoding and resampling (one well-tested path for every container);
numpy holds the analysis copy in memory for the backends, which is much faster than
handing them file paths.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from core import faults
from core.errors import EmptyMedia, InvalidMedia, SilentAudio

ORIGINAL_RATE = 48_000
ANALYSIS_RATE = 16_000


@lru_cache(maxsize=4)
def ffmpeg_binary(configured: str | None = None) -> str:
    """ffmpeg from settings, else PATH, else the binary imageio-ffmpeg ships in its wheel."""
    if configured:
        return configured
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def transcode(
    src: Path,
    dst: Path,
    rate: int,
    channels: int = 1,
    ffmpeg: str | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Path:
    """Decode any media file to 16-bit PCM WAV at ``rate``. Undecodable input -> InvalidMedia.

    ffmpeg reports its position (``-progress``) a few times a second: ``on_progress``
    gets the seconds of audio written so far, and the reading loop keeps this thread
    in Python, so a cancelled attempt stops here (ffmpeg is killed) instead of after
    the whole file."""
    faults.stall("transcode")
    cmd = [
        ffmpeg_binary(ffmpeg), "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
        "-progress", "pipe:1", "-y",
        "-i", str(src), "-vn", "-ac", str(channels), "-ar", str(rate),
        "-c:a", "pcm_s16le", str(dst),
    ]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            for line in proc.stdout:
                if on_progress and line.startswith("out_time_us=") and line[12:].strip().isdigit():
                    on_progress(int(line[12:]) / 1e6)
            errors = proc.stderr.read()
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            raise
    if returncode != 0 or not dst.exists():
        reason = errors.strip().splitlines()[-1:] or ["no output"]
        raise InvalidMedia(f"ffmpeg could not decode {src.name}: {reason[0][:200]}")
    return dst


def load_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def peak_dbfs(samples: np.ndarray) -> float:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else -np.inf


def check_audible(samples: np.ndarray, rate: int, silence_dbfs: float) -> None:
    """Refuse recordings with nothing in them before any GPU second is spent on them."""
    if samples.size < rate // 10:
        raise EmptyMedia(f"decoded {samples.size} samples: no audio")
    level = peak_dbfs(samples)
    if level < silence_dbfs:
        raise SilentAudio(f"peak level {level:.1f} dBFS is below {silence_dbfs:.0f} dBFS")
