"""Audio decoding and the two copies every video gets: 48 kHz original and 16 kHz analysis.

ffmpeg does all decoding and resampling (one well-tested path for every container);
numpy holds the analysis copy in memory for the backends, which is much faster than
handing them file paths.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
import soundfile as sf

from core import faults
from core.errors import EmptyMedia, InvalidMedia, SilentAudio

ORIGINAL_RATE = 48_000
ANALYSIS_RATE = 16_000
# What ffmpeg may open for its input: the local file it is given (no other protocol),
# read by an audio container's demuxer. Never a playlist or other indirection (hls,
# concat, dash, ...): remote content that names other files or URLs would make ffmpeg
# read local files (committed as the video's audio) or connect anywhere. mpegts is
# what yt-dlp's native HLS download writes.
INPUT_WHITELIST = [
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    "mp3,mov,mp4,m4a,3gp,matroska,webm,ogg,wav,w64,flac,aac,aiff,caf,asf,mpegts",
]


@lru_cache(maxsize=4)
def ffmpeg_binary(configured: str | None = None) -> str:
    """ffmpeg from settings, else PATH, else the binary imageio-ffmpeg ships in its wheel."""
    if configured:
        return configured
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return cast(str, imageio_ffmpeg.get_ffmpeg_exe())  # a path; imageio-ffmpeg is untyped


def transcode(
    src: Path,
    dst: Path,
    rate: int,
    channels: int = 1,
    ffmpeg: str | None = None,
    on_progress: Callable[[float], None] | None = None,
    max_duration_s: float | None = None,
) -> Path:
    """Decode any media file to 16-bit PCM WAV at ``rate``. Undecodable input -> InvalidMedia.

    ffmpeg reports its position (``-progress``) a few times a second: ``on_progress``
    gets the seconds of audio written so far, and the reading loop keeps this thread
    in Python, so a cancelled attempt stops here (ffmpeg is killed) instead of after
    the whole file."""
    faults.stall("transcode")
    cmd = [
        ffmpeg_binary(ffmpeg),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        "-y",
        *INPUT_WHITELIST,
        "-i",
        str(src),
        "-vn",
        "-ac",
        str(channels),
        "-ar",
        str(rate),
        *(["-t", f"{max_duration_s:.3f}"] if max_duration_s else []),  # bounds the output
        "-c:a",
        "pcm_s16le",
        str(dst),
    ]
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


def scan_wav(path: Path, block_s: float = 60.0) -> tuple[float, float]:
    """Duration (s) and peak level (dBFS) of a WAV, read a block at a time: memory does
    not grow with the recording's length."""
    info = sf.info(str(path))
    peak = 0.0
    for block in sf.blocks(
        str(path), blocksize=int(block_s * info.samplerate), dtype="float32", always_2d=True
    ):
        if block.size:
            peak = max(peak, float(np.max(np.abs(block))))
    level = 20.0 * np.log10(peak) if peak > 0 else -np.inf
    return info.frames / info.samplerate, level


def media_duration(src: Path, ffmpeg: str | None = None) -> float | None:
    """The duration a container announces (its header), read by ffmpeg without decoding;
    None when it announces none (a stream, a raw file)."""
    proc = subprocess.run(
        [ffmpeg_binary(ffmpeg), "-nostdin", "-hide_banner", *INPUT_WHITELIST, "-i", str(src)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", proc.stderr)
    if not found:
        return None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_audible(duration_s: float, peak_dbfs: float, silence_dbfs: float) -> None:
    """Refuse recordings with nothing in them before any GPU second is spent on them."""
    if duration_s < 0.1:
        raise EmptyMedia(f"decoded {duration_s:.3f} s: no audio")
    if peak_dbfs < silence_dbfs:
        raise SilentAudio(f"peak level {peak_dbfs:.1f} dBFS is below {silence_dbfs:.0f} dBFS")
