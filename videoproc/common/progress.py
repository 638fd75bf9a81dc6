"""Progress for long runs: a live bar on a terminal, quiet timestamped lines otherwise.

Scheduled runs write to log files, where a carriage-return bar turns into megabytes of noise, so
the line mode prints at most one line every `interval` seconds.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Literal, TextIO

ProgressMode = Literal["auto", "bar", "lines", "off"]


@dataclass(kw_only=True)
class Progress:
    """Counts items done and failed. `mode="auto"` picks the bar when the stream is a terminal."""

    total: int
    label: str = "videos"
    mode: ProgressMode = "auto"
    interval: float = 10.0
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    _last_print: float = 0.0

    def __post_init__(self) -> None:
        if self.mode == "auto":
            self.mode = "bar" if self.stream.isatty() else "lines"

    def advance(self, *, ok: bool, note: str = "") -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        now = time.monotonic()
        if self.mode == "bar":
            self._draw(note)
        elif self.mode == "lines" and (now - self._last_print >= self.interval or self.done == self.total):
            self._last_print = now
            print(self.line(), file=self.stream, flush=True)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"[{time.strftime('%H:%M:%S')}] {self.done}/{self.total} {self.label} "
            f"({self.rate():.2f}/s, {self.failed} failed)"
        )

    def close(self) -> None:
        if self.mode == "bar":
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, note: str) -> None:
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        text = f"\r[{bar}] {self.done}/{self.total} {self.label} {self.rate():.2f}/s {self.failed} failed {note[:40]}"
        self.stream.write(text.ljust(110))
        self.stream.flush()
