"""The line an operator watches while a command waits for a batch.

On a terminal it is one line redrawn in place (carriage return, then clear to the end
of the line, so a shorter line leaves nothing of a longer one); anywhere else (CI, a
log file, a pipe) a plain line is written only when the counts change, and at most
every PLAIN_EVERY_S, so a day-long wait does not fill a log with copies of one line.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TextIO

from temporalio.client import Client

from core.contracts.batch import BatchProgress

BAR_WIDTH = 20
POLL_S = 2.0  # how often the batch's progress is queried while waiting
PLAIN_EVERY_S = 30.0
CLEAR_LINE = "\r\x1b[K"


def duration(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour; days past one."""
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_text(p: BatchProgress, waited_s: float) -> str:
    """One line: a bar, done of total, the counts that matter, the rate and the ETA."""
    filled = int(BAR_WIDTH * p.done / max(p.total, 1))
    rate = p.videos_per_h_recent or p.videos_per_h_overall
    per_h = f"{rate:.1f}" if rate else "-"  # nothing finished yet
    eta = duration(p.eta_s) if p.eta_s else "-"
    paused = "  PAUSED" if p.paused else ""
    copies = f", {p.duplicates} duplicates" if p.duplicates else ""
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {p.done}/{p.total} done: "
        f"{p.completed + p.already_completed} ok{copies}, {p.failed} failed, {p.running} running, "
        f"{p.waiting} waiting | {per_h} videos/h | ETA {eta} | {duration(waited_s)}{paused}"
    )


class ProgressLine:
    """Shows progress texts on ``stream``: redrawn on a terminal, plain lines elsewhere."""

    def __init__(self, stream: TextIO | None = None, plain_every_s: float = PLAIN_EVERY_S) -> None:
        self.stream = stream or sys.stderr
        self.redraw = self.stream.isatty()
        self.plain_every_s = plain_every_s
        self._drawn = False
        self._last_counts: str | None = None
        self._last_plain = -float("inf")

    def show(self, text: str, counts: str, final: bool = False) -> None:
        """Draw ``text``; in a log only when ``counts`` (what it says, less the clocks)
        changed since the last line, and not within PLAIN_EVERY_S of it unless ``final``."""
        if self.redraw:
            self.stream.write(CLEAR_LINE + text)
            self._drawn = True
        else:
            now = time.monotonic()
            if counts == self._last_counts or (now - self._last_plain < self.plain_every_s and not final):
                return
            self._last_counts, self._last_plain = counts, now
            self.stream.write(text + "\n")
        self.stream.flush()

    def show_batch(self, p: BatchProgress, waited_s: float, final: bool = False) -> None:
        counts = f"{p.done} {p.completed} {p.failed} {p.running} {p.waiting} {p.paused}"
        self.show(progress_text(p, waited_s), counts, final)

    def close(self) -> None:
        """End the redrawn line, so what is printed next starts on a line of its own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


Poll = Callable[[ProgressLine, float, bool], Awaitable[None]]


@asynccontextmanager
async def showing(poll: Poll, line: ProgressLine | None = None) -> AsyncIterator[ProgressLine]:
    """While the body waits, ``poll`` draws on a progress line every POLL_S (it is given
    the line, the seconds waited and whether it is the last draw); a poll that fails is
    skipped. Once the body is done the line is drawn a last time, so it ends on the end."""
    line = line or ProgressLine()
    started = time.monotonic()

    async def draw(final: bool) -> None:
        try:
            await asyncio.wait_for(poll(line, time.monotonic() - started, final), POLL_S * 5)
        except Exception:  # between two runs of continue-as-new, or the workflow just ended
            pass

    async def watch() -> None:
        while True:
            await draw(final=False)
            await asyncio.sleep(POLL_S)

    task = asyncio.create_task(watch())
    try:
        yield line
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await draw(final=True)
        line.close()


def showing_progress(
    client: Client, batch_id: str, workflow_id: str | None = None, line: ProgressLine | None = None
) -> AbstractAsyncContextManager[ProgressLine]:
    """The batch's progress (its BatchWorkflow's query) on a line while the body waits."""
    from starter.status import batch_progress

    async def poll(line: ProgressLine, waited_s: float, final: bool) -> None:
        line.show_batch(await batch_progress(client, batch_id, workflow_id), waited_s, final)

    return showing(poll, line)
