"""Audio that tests and benchmarks assemble with ffmpeg.

One spelling of the quiet ffmpeg call and of its concat demuxer, so a fixture that
joins speech into a long recording and a benchmark that does the same build it alike.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from core.audio import ffmpeg_binary


def ffmpeg(*args: str) -> None:
    """ffmpeg on ``args``, never prompting and overwriting its output; a failure raises."""
    subprocess.run([ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def concat(listing: Path, *output: str) -> None:
    """The files ``listing`` names (``file '...'`` lines, any path, any ``inpoint``)
    joined end to end; ``output`` is the output options and the file they go to."""
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), *output)
