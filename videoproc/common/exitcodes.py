"""The exit status of every videoproc command, one table for preprocess, generate, status and inspect.

A scheduler reads them without parsing text: 2 means nothing was done and re-running the same
command will not help; 3 and 4 mean the run got through its work (4: some of it is left, re-run to
finish); 5 and 130 mean it stopped part-way and a re-run resumes.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # finished, every row or request ok
    CRASHED = 1  # an unexpected error; the traceback says where
    REFUSED = 2  # bad options, queue or manifest, a refused resume, a locked output: before any work
    ROWS_FAILED = 3  # finished, some rows or requests failed (they are rows of the output)
    INCOMPLETE = 4  # some shards or requests were left unwritten; re-run to finish them
    LOCK_LOST = 5  # this run's object-storage lock was broken or expired; it stopped committing
    INTERRUPTED = 130  # Ctrl-C (SIGINT); re-run the same command to resume

