"""Test-only hooks, installed by the tests that need them and never by the library.

Real failures on demand: `faulting_job` wraps the per-video job so that a URI naming a fault makes
the worker process really segfault (SIGSEGV) or really hang, and `install_write_delay` makes every
shard flush really pause, widening the window in which a shard is half-written so that kill tests
can hit it. They go in through the library's seams (videoproc.preprocess.executor.VIDEO_JOB, which
the local and Ray executors ship to their workers by reference; the shard writer's flush), so no
environment variable or flag of the production code can switch them on.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
from typing import Any

from videoproc.preprocess import executor, write
from videoproc.video.process import VideoResult, VideoTask, process_video

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
    """Pause `seconds` after every row group of every shard this process writes."""
    flush = write.ShardWriter._write

    @functools.wraps(flush)
    def slow_write(self: write.ShardWriter, batch: list) -> None:
        flush(self, batch)
        time.sleep(seconds)

    write.ShardWriter._write = slow_write


def auditing_job(task: VideoTask, *, report_dir: str, **kwargs: Any) -> VideoResult:
    """process_video, leaving beside it what the row cost and touched: the worker's peak resident
    memory during the row (VmHWM, reset first by writing 5 to clear_refs), its address-space
    ceiling, and every path the worker process opened while on it (the interpreter's `open` audit
    event, raised by open() and os.open() alike). Written to report_dir/<row>.json, since a result
    carries only output columns back."""
    _install_open_audit()
    _OPENED.clear()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    result = process_video(task, **kwargs)
    from videoproc.common.memory import worker_memory_ceiling

    report = {"id": task.id, "peak_rss": status_bytes("VmHWM"), "ceiling": worker_memory_ceiling(),
              "opened": sorted(set(_OPENED))}
    with open(os.path.join(report_dir, f"{task.row}.json"), "w") as f:
        json.dump(report, f)
    return result


_OPENED: list[str] = []
_AUDITING: list[bool] = []


def _install_open_audit() -> None:
    if _AUDITING:
        return

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, bytes)):
            _OPENED.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)  # cannot be removed: one per worker process, installed once
    _AUDITING.append(True)


def status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))
