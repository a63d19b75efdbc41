"""Audio decoding and the two copies every video gets: 48 kHz original and 16 kHz analysis.

ffmpeg does all decoding and resampling (one well-tested path for every container).
The model stages read the analysis copy span by span from their scratch disk
(``Recording``), never whole: the backends take any ``Samples``, an ndarray included.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol, cast

import numpy as np

from core.contracts.errors import EmptyMedia, InvalidMedia, SilentAudio, Stalled
from core.service import faults

# no stdin, no banner, errors only: ffmpeg's stderr is read for what went wrong
QUIET = ["-nostdin", "-hide_banner", "-loglevel", "error"]
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


@dataclass(frozen=True)
class DecodeBounds:
    """How long one ffmpeg call may take. ffmpeg decodes audio hundreds of times faster
    than real time, so a call that runs far past ``fixed_s + per_audio_s`` times the
    media's length, or whose written position stops moving for ``no_progress_s``, is
    hung (damaged media it loops on, a dead disk), not slow: it is killed and the step
    fails ``Stalled``, freeing its slot, instead of holding it for the activity timeout."""

    fixed_s: float = 120.0
    per_audio_s: float = 0.25
    no_progress_s: float = 120.0

    def deadline_s(self, media_s: float) -> float:
        return self.fixed_s + self.per_audio_s * media_s


STDERR_LINES_KEPT = 20  # ffmpeg's last error lines, for the error message


def transcode(
    src: Path,
    dst: Path,
    rate: int,
    channels: int = 1,
    ffmpeg: str | None = None,
    on_progress: Callable[[float], None] | None = None,
    max_duration_s: float | None = None,
    media_s: float | None = None,
    bounds: DecodeBounds = DecodeBounds(),
) -> Path:
    """Decode any media file to 16-bit PCM WAV at ``rate``. Undecodable input -> InvalidMedia;
    a call past its bounds (``DecodeBounds``, for ``media_s`` seconds of media, else
    ``max_duration_s``) -> Stalled.

    ffmpeg reports its position (``-progress``) a few times a second: ``on_progress``
    gets the seconds of audio written so far. Both of ffmpeg's outputs are drained by
    threads while this one waits in short slices, so neither pipe can fill and block
    ffmpeg (damaged media makes ffmpeg write megabytes of error lines), and a cancelled
    attempt stops here (ffmpeg is killed) instead of after the whole file."""
    faults.stall("transcode")
    cmd = [
        ffmpeg_binary(ffmpeg),
        *QUIET,
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
    deadline_s = bounds.deadline_s(media_s or max_duration_s or 0.0)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        position = _Position()
        errors: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        drains = [
            threading.Thread(target=position.follow, args=(proc.stdout,), daemon=True),
            threading.Thread(target=errors.extend, args=(proc.stderr,), daemon=True),
        ]
        for drain in drains:
            drain.start()
        try:
            returncode = _wait_bounded(proc, position, on_progress, deadline_s, bounds.no_progress_s, src)
        except BaseException:
            proc.kill()
            raise
        for drain in drains:
            drain.join(timeout=5)
    if returncode != 0 or not dst.exists():
        reason = [line for line in errors if line.strip()][-1:] or ["no output"]
        raise InvalidMedia(f"ffmpeg could not decode {src.name}: {reason[0].strip()[:200]}")
    return dst


class _Position:
    """The output position ffmpeg reports on its progress pipe, and when it last moved."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.moved_at = time.monotonic()

    def follow(self, lines: Iterable[str]) -> None:
        for line in lines:
            if line.startswith("out_time_us=") and line[12:].strip().isdigit():
                seconds = int(line[12:]) / 1e6
                if seconds > self.seconds:
                    self.seconds, self.moved_at = seconds, time.monotonic()


def _wait_bounded(
    proc: subprocess.Popen[str],
    position: _Position,
    on_progress: Callable[[float], None] | None,
    deadline_s: float,
    no_progress_s: float,
    src: Path,
) -> int:
    started = time.monotonic()
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if on_progress:
            on_progress(position.seconds)
        if now - position.moved_at > no_progress_s:
            raise Stalled(
                f"ffmpeg wrote nothing new for {no_progress_s:.0f} s "
                f"at {position.seconds:.0f} s of {src.name}",
                details={"step": "transcode", "audio_s": position.seconds},
            )
        if now - started > deadline_s:
            raise Stalled(
                f"ffmpeg ran past its {deadline_s:.0f} s deadline at {position.seconds:.0f} s of {src.name}",
                details={"step": "transcode", "audio_s": position.seconds},
            )


class Samples(Protocol):
    """What the analysis reads audio through: a whole recording in memory (an ndarray)
    or on disk (``Recording``): its length in samples, and the float32 samples of a span."""

    def __len__(self) -> int: ...

    def __getitem__(self, span: slice, /) -> np.ndarray: ...


class Recording:
    """A mono WAV on disk, read span by span as float32 in [-1, 1]: ``recording[a:b]``
    reads samples a..b-1 and nothing else, so a stage's memory does not grow with the
    recording's length (an hour of 16 kHz float32 is 230 MB; the longest allowed
    recording, six times that). Threads may read at once (the diarization reads its
    segmentation and CAM++ windows side by side): each read holds the file alone."""

    def __init__(self, path: Path) -> None:
        import soundfile as sf  # libsndfile: loaded where audio is read, not where this module is

        self._file = sf.SoundFile(str(path))
        self.rate: int = self._file.samplerate
        self._frames: int = self._file.frames
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._frames

    @property
    def duration_s(self) -> float:
        return self._frames / self.rate

    def __getitem__(self, span: slice, /) -> np.ndarray:
        start, stop, step = span.indices(self._frames)
        if step != 1:
            raise ValueError("a Recording reads contiguous spans only")
        count = max(0, stop - start)
        with self._lock:
            self._file.seek(start)
            data = self._file.read(count, dtype="float32", always_2d=True)
        return cast(np.ndarray, data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def load_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate."""
    import soundfile as sf  # libsndfile: loaded where audio is read, not where this module is

    data, rate = sf.read(str(path), dtype="float32")  # mono (the analysis copy): one array, no copy
    return (data.mean(axis=1, dtype=np.float32) if data.ndim == 2 else data), rate


def scan_wav(path: Path, block_s: float = 60.0) -> tuple[float, float]:
    """Duration (s) and peak level (dBFS) of a WAV, read a block at a time: memory does
    not grow with the recording's length."""
    import soundfile as sf

    info = sf.info(str(path))
    peak = 0.0
    for block in sf.blocks(
        str(path), blocksize=int(block_s * info.samplerate), dtype="float32", always_2d=True
    ):
        if block.size:
            peak = max(peak, float(np.max(np.abs(block))))
    level = 20.0 * np.log10(peak) if peak > 0 else -np.inf
    return info.frames / info.samplerate, level


HEADER_READ_S = 60.0  # reading a container's header is instant on sane media


def media_duration(src: Path, ffmpeg: str | None = None) -> float | None:
    """The duration a container announces (its header), read by ffmpeg without decoding;
    None when it announces none (a stream, a raw file)."""
    try:
        proc = subprocess.run(
            [ffmpeg_binary(ffmpeg), "-nostdin", "-hide_banner", *INPUT_WHITELIST, "-i", str(src)],
            capture_output=True,  # both pipes drained together: no full pipe blocks ffmpeg
            text=True,
            timeout=HEADER_READ_S,
        )
    except subprocess.TimeoutExpired:
        raise InvalidMedia(
            f"ffmpeg could not read the header of {src.name} in {HEADER_READ_S:.0f} s"
        ) from None
    found = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", proc.stderr)
    if not found:
        return None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_audible(duration_s: float, peak_dbfs: float, silence_dbfs: float) -> None:
    """Refuse recordings with nothing in them before any GPU second is spent on them."""
    if duration_s < 0.1:
        raise EmptyMedia(f"decoded {duration_s:.3f} s: no audio")
    if peak_dbfs < silence_dbfs:
        raise SilentAudio(f"peak level {peak_dbfs:.1f} dBFS is below {silence_dbfs:.0f} dBFS")
