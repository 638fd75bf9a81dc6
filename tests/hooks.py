"""Test-only hooks, installed by the tests that need them and never by the library.

Real failures on demand: `faulting_job` wraps the per-video job so that a URI naming a fault makes
the worker process really segfault (SIGSEGV) or really hang, and `install_write_delay` makes every
shard flush really pause, widening the window in which a shard is half-written so that kill tests
can hit it. They go in through the library's seams (videoproc.executor.VIDEO_JOB, which the local
and Ray executors ship to their workers by reference; the shard writer's flush), so no environment
variable or flag of the production code can switch them on.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from typing import Any

from videoproc import executor, write
from videoproc.process import VideoResult, VideoTask, process_video

SEGFAULT_MARK = "fault-segfault"
HANG_MARK = "fault-hang"


def faulting_job(task: VideoTask, **kwargs: Any) -> VideoResult:
    """process_video, except that a URI containing SEGFAULT_MARK kills the worker with SIGSEGV and
    one containing HANG_MARK hangs it (until the pool's --timeout replaces it)."""
    if SEGFAULT_MARK in task.uri:
        os.kill(os.getpid(), signal.SIGSEGV)
    if HANG_MARK in task.uri:
        time.sleep(3600)
    return process_video(task, **kwargs)


def install_faults() -> None:
    """Make this process's runs use faulting_job (local pool and Ray tasks alike)."""
    executor.VIDEO_JOB = faulting_job


def install_write_delay(seconds: float) -> None:
    """Pause `seconds` after every row-group flush of every shard this process writes."""
    flush = write.ShardWriter._flush

    @functools.wraps(flush)
    def slow_flush(self: write.ShardWriter) -> None:
        flush(self)
        time.sleep(seconds)

    write.ShardWriter._flush = slow_flush
