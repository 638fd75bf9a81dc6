"""The progress display: tqdm's bar, the hand-written timestamped lines for logs, and off."""

from __future__ import annotations

import io
import re

import pytest

from videoproc.common.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_lines_in_a_log_with_one_line_per_interval_and_the_last_always():
    log = io.StringIO()
    progress = Progress(total=3, stream=log, interval=3600)
    assert progress.mode == "lines"
    for ok in (True, False, True):
        progress.advance(ok=ok, note="clip")
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2, lines  # the first (no line printed yet) and the last
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] 1/3 videos \(\d+\.\d\d/s, 0 failed\)", lines[0])
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] 3/3 videos \(\d+\.\d\d/s, 1 failed\)", lines[1])
    assert "\r" not in log.getvalue()


def test_auto_is_the_bar_on_a_terminal():
    screen = Terminal()
    progress = Progress(total=4, label="requests", stream=screen)
    assert progress.mode == "bar"
    for ok in (True, True, False, True):
        progress.advance(ok=ok, note="r-7")
    progress.note("r-8: step 3/20 1.5 s")
    progress.close()
    out = screen.getvalue()
    assert "\r" in out and out.endswith("\n")
    last = out.rstrip("\n").rsplit("\r", 1)[-1]
    assert re.search(r"requests: 100%.*\| 4/4 \[.*requests/s", last), last
    assert "1 failed" in last


@pytest.mark.parametrize("stream", [io.StringIO(), Terminal()])
def test_off_prints_nothing(stream):
    progress = Progress(total=2, mode="off", stream=stream)
    progress.advance(ok=True)
    progress.note("step 1/2")
    progress.advance(ok=False)
    progress.close()
    assert stream.getvalue() == "" and (progress.done, progress.failed) == (2, 1)
