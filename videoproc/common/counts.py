"""The counts both stages report at the end of a run, and the exit status they imply.

Each stage keeps its own summary for people and for summary.json (preprocess counts rows and
shards, generate counts requests and phase times); both reduce it to RunCounts, so "finished, some
failed" and "re-run to finish" mean the same thing, and give the same exit status, in both.
"""

from __future__ import annotations

from dataclasses import dataclass

from videoproc.common.exitcodes import ExitCode


@dataclass(frozen=True, kw_only=True)
class RunCounts:
    """total: rows (preprocess) or requests (generate) the input holds. ok and failed: those the
    output holds as done, this run's or earlier ones'. left: units of work left unwritten
    (preprocess: pending shards; generate: requests whose Ray actors were lost), which a re-run does."""

    total: int
    ok: int
    failed: int
    left: int = 0

    def exit_code(self) -> ExitCode:
        if self.left:
            return ExitCode.INCOMPLETE
        return ExitCode.ROWS_FAILED if self.failed else ExitCode.OK
