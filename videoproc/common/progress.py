"""Progress for long runs: a live bar on a terminal, quiet timestamped lines otherwise.

The bar is tqdm's (rate, elapsed and remaining time, redraws limited to ten a second, width
following the terminal), imported only when a bar is shown. The line mode stays here: scheduled
runs write to log files, where a carriage-return bar turns into megabytes of noise, and tqdm has
no mode that prints a plain timestamped line, so it prints at most one line every `interval`
seconds, and the last one always.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

ProgressMode = Literal["auto", "bar", "lines", "off"]


@dataclass(kw_only=True)
class Progress:
    """Counts items done and failed. `mode="auto"` picks the bar when the stream is a terminal;
    `interval` is the least number of seconds between two lines in "lines" mode."""

    total: int
    label: str = "videos"
    mode: ProgressMode = "auto"
    interval: float = 10.0
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    _last_print: float = 0.0
    _bar: Any = field(default=None, init=False, repr=False)  # a tqdm bar in "bar" mode

    def __post_init__(self) -> None:
        if self.mode == "auto":
            self.mode = "bar" if self.stream.isatty() else "lines"
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.label, unit=f" {self.label}", file=self.stream,
                             dynamic_ncols=True, initial=self.done)

    def advance(self, *, ok: bool, note: str = "") -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        now = time.monotonic()
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.failed} failed {note[:40]}".rstrip(), refresh=False)
            self._bar.update(1)
        elif self.mode == "lines" and (now - self._last_print >= self.interval or self.done == self.total):
            self._last_print = now
            print(self.line(), file=self.stream, flush=True)

    def note(self, text: str) -> None:
        """Show `text` (e.g. the step of the item being worked on) beside the bar; only in bar mode."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.failed} failed {text[:60]}")

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"[{time.strftime('%H:%M:%S')}] {self.done}/{self.total} {self.label} "
            f"({self.rate():.2f}/s, {self.failed} failed)"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
