"""A corpus of damaged media, built from one real recording: what a fleet meets sooner or
later (truncated uploads, flipped bits, garbage frames, wrong extensions, empty files,
huge headers, lying headers). The tests run each case through the real download path;
the chaos benchmark mixes them into its batch.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from pathlib import Path

from devstack.media import ffmpeg


def ten_minutes_mp3(folder: Path, source: Path) -> bytes:
    """Ten minutes of ``source`` on a loop, as MP3 (built once)."""
    path = folder / "ten-minutes.mp3"
    if not path.exists():
        ffmpeg("-stream_loop", "40", "-i", str(source), "-t", "600", "-c:a", "libmp3lame", str(path))
    return path.read_bytes()


def garbage_every_few_kb(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for at in range(4096, len(out) - 256, 3000):
        out[at : at + 200] = rng.randbytes(200)
    return bytes(out)


def flipped_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(len(out) // 500):
        at = rng.randrange(64, len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def huge_header(data: bytes, rng: random.Random) -> bytes:
    """An ID3v2 tag claiming (and holding) 64 MiB of padding before the audio."""
    size = 64 << 20
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + bytes(size) + data


def wav_lying_about_its_length(data: bytes, rng: random.Random) -> bytes:
    """A WAV header announcing 4 GB of samples, followed by a few seconds of noise."""
    body = rng.randbytes(16_000 * 2 * 3)
    header = (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFF0)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16_000, 32_000, 2, 16)
    )
    return header + b"data" + struct.pack("<I", 0xFFFFFFE0) + body


Build = Callable[[bytes, random.Random], bytes]
# label, file name, how it is built from the 10-minute MP3, the error types it may end
# with (None: it decodes, in part or whole)
CASES: list[tuple[str, str, Build, tuple[str, ...] | None]] = [
    ("garbage every 3 KB", "garbage.mp3", garbage_every_few_kb, None),
    ("bits flipped", "flipped.mp3", flipped_bits, None),
    ("cut at a third", "truncated.mp3", lambda d, r: d[: len(d) // 3], None),
    ("only the first 700 bytes", "stub.mp3", lambda d, r: d[:700], ("InvalidMedia", "EmptyMedia")),
    ("zero-length", "zero.mp3", lambda d, r: b"", ("EmptyMedia",)),
    ("random bytes", "noise.mp3", lambda d, r: r.randbytes(200_000), ("InvalidMedia",)),
    ("MP3 named .ogg", "mp3-named.ogg", lambda d, r: d, None),
    ("64 MiB ID3 header", "huge-header.mp3", huge_header, None),
    ("WAV announcing 4 GB", "liar.wav", wav_lying_about_its_length, None),
]


def build_corpus(folder: Path, source: Path, seed: int = 22) -> dict[str, Path]:
    """Every case of CASES as a file in ``folder``, from the recording ``source``."""
    rng = random.Random(seed)
    mp3 = ten_minutes_mp3(folder, source)
    built = {}
    for _, name, build, _ in CASES:
        (folder / name).write_bytes(build(mp3, rng))
        built[name] = folder / name
    return built
