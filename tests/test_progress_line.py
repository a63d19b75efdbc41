"""The line an operator watches while ``--wait`` waits: redrawn in place on a terminal,
plain lines only when the counts change in a log or a pipe."""

from __future__ import annotations

import io

from core.contracts.batch import BatchProgress
from starter.progress import CLEAR_LINE, ProgressLine, duration, progress_text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def progress(done: int, running: int, failed: int = 0, eta_s: float | None = 90.0) -> BatchProgress:
    return BatchProgress(
        batch_id="mine",
        total=10,
        done=done,
        completed=done - failed,
        already_completed=0,
        skipped=0,
        failed=failed,
        failed_by_error={"SilentAudio": failed} if failed else {},
        running=running,
        waiting=10 - done - running,
        paused=False,
        videos_per_h_recent=120.0,
        videos_per_h_overall=100.0,
        audio_h_per_h_recent=2.0,
        audio_h_per_h_overall=1.5,
        eta_s=eta_s,
        per_class={},
        elapsed_s=60.0,
        runs=1,
    )


def test_the_text_says_counts_rate_and_eta():
    text = progress_text(progress(4, 2, failed=1), waited_s=75)
    assert text.startswith("[########............] 4/10 done: 3 ok, 1 failed, 2 running, 4 waiting")
    assert "120.0 videos/h" in text and "ETA 1:30" in text and text.endswith("| 1:15")
    assert "ETA -" in progress_text(progress(0, 0, eta_s=None), waited_s=0)
    assert [duration(s) for s in (5, 75, 3725, 2 * 86400)] == ["0:05", "1:15", "1:02:05", "2.0 days"]


def test_a_terminal_gets_one_line_redrawn_in_place_and_ended_once():
    screen = Terminal()
    line = ProgressLine(screen)
    line.show_batch(progress(1, 2), 2.0)
    line.show_batch(progress(2, 2), 4.0)
    assert "\n" not in screen.getvalue()  # one line, drawn twice
    assert screen.getvalue().count(CLEAR_LINE) == 2  # each draw clears what a longer one left
    line.close()
    line.close()
    assert screen.getvalue().endswith("\n") and screen.getvalue().count("\n") == 1


def test_a_log_gets_a_plain_line_only_when_the_counts_change():
    log = io.StringIO()
    line = ProgressLine(log, plain_every_s=0.0)
    for done, waited in [(1, 2.0), (1, 4.0), (1, 6.0), (2, 8.0), (2, 10.0)]:
        line.show_batch(progress(done, 2), waited)
    line.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and CLEAR_LINE not in log.getvalue()
    assert lines[0].startswith("[##") and "1/10 done" in lines[0] and "2/10 done" in lines[1]


def test_a_log_gets_at_most_one_line_per_interval():
    log = io.StringIO()
    line = ProgressLine(log, plain_every_s=3600.0)
    for done in range(1, 6):
        line.show_batch(progress(done, 1), float(done))
    assert len(log.getvalue().splitlines()) == 1  # the first; the rest changed within the hour


def test_the_line_ends_on_the_end_even_in_a_log():
    """``showing`` draws once more after the wait, forced past the interval, so the last
    line says where the batch ended, not where the last poll found it."""
    import asyncio

    from starter.progress import showing

    log = io.StringIO()
    state = {"done": 1}

    async def poll(line: ProgressLine, waited_s: float, final: bool) -> None:
        line.show_batch(progress(state["done"], 10 - state["done"], eta_s=None), waited_s, final)

    async def wait() -> None:
        async with showing(poll, ProgressLine(log, plain_every_s=3600.0)):
            await asyncio.sleep(0.1)  # the first poll draws 1/10
            state["done"] = 10

    asyncio.run(wait())
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "1/10 done" in lines[0] and "10/10 done" in lines[1], lines
    assert "- videos/h" not in lines[0]  # a rate once anything finished
    assert "| - videos/h |" in progress_text(
        progress(0, 0).model_copy(update={"videos_per_h_recent": 0.0, "videos_per_h_overall": 0.0}), 1.0
    )
