"""Audio that tests and benchmarks assemble with ffmpeg.

One spelling of the quiet ffmpeg call and of joining recordings end to end, so a
fixture that joins speech into a long recording and a benchmark that does the same
build it alike.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from core.analysis.audio import ffmpeg_binary

JOIN_RATE = 16_000  # every part is decoded to mono 16-bit PCM, at this rate unless told, before joining


def ffmpeg(*args: str) -> None:
    """ffmpeg on ``args``, never prompting and overwriting its output; a failure raises."""
    subprocess.run([ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def to_pcm(src: Path, dst: Path, rate: int = JOIN_RATE) -> Path:
    """``src`` decoded to mono 16-bit PCM WAV at ``rate``."""
    ffmpeg("-i", str(src), "-ac", "1", "-ar", str(rate), "-c:a", "pcm_s16le", str(dst))
    return dst


def join(
    parts: Sequence[Path | tuple[Path, float]], workdir: Path, *output: str, rate: int = JOIN_RATE
) -> None:
    """The ``parts`` (a file, or a file and the second to enter it at) joined end to end;
    ``output`` is the output options and the file they go to.

    Every distinct file is decoded to one format first: the concat demuxer reads each
    part with the parameters of the first, so a float WAV after an int16 one came out
    as full-scale noise (issue 23: a "long speech" fixture that was 77 % noise)."""
    workdir.mkdir(parents=True, exist_ok=True)
    decoded: dict[Path, Path] = {}
    lines = []
    for part in parts:
        path, inpoint = part if isinstance(part, tuple) else (part, None)
        if path not in decoded:
            decoded[path] = to_pcm(path, workdir / f"part-{len(decoded):03d}.wav", rate)
        lines.append(f"file '{decoded[path]}'\n" + (f"inpoint {inpoint:.3f}\n" if inpoint else ""))
    listing = workdir / "join.txt"
    listing.write_text("".join(lines))
    try:
        ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), *output)
    finally:
        listing.unlink()
        for wav in decoded.values():
            wav.unlink(missing_ok=True)
