"""A process pool that survives its workers: one video per worker at a time, each with a deadline.

concurrent.futures' pool breaks as a whole when one worker dies and cannot say which task killed
it. Here the parent knows what every worker holds, so a segfault in a decoder or a video that hangs
past its timeout fails only that video; the worker is replaced and the run goes on. Each worker
runs under the address-space ceiling of WorkerConfig.memory_limit (--worker-memory), so a video
that makes FFmpeg allocate without bound fails its row instead of the machine.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from videoproc.common.memory import WORKER_MEMORY_OPTION, limit_worker_memory
from videoproc.preprocess import handoff
from videoproc.video.process import VideoResult, VideoTask, failed

START_TIMEOUT_S = 120.0
WORKER_NICENESS = 5
_READY = "ready"
_READY_WITH_FILE = "ready, frames file follows"
_START_FAILED = (
    "a worker process failed to start (see its output above); a script that starts a job must do "
    'so under `if __name__ == "__main__":`'
)


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """What each worker needs; sent once at start. `job(task, **kwargs)` returns a VideoResult.
    memory_limit: the worker's address-space ceiling in bytes (RLIMIT_AS), None for none."""

    job: Callable[..., VideoResult]
    kwargs: dict[str, Any]
    memory_limit: int | None = None


@dataclass
class _Worker:
    process: Any
    conn: Connection
    frames_fd: int | None = None  # the worker's frames file (handoff), None: frames come inline
    task: VideoTask | None = None
    deadline: float = 0.0


def _worker_main(conn: Connection, config: WorkerConfig) -> None:
    # The parent handles Ctrl-C for the whole run; a worker interrupted mid-video would only
    # produce a confusing traceback per process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Workers yield the CPU to the parent, the one process that writes shards: with as many
    # workers as cores, an equal-priority parent waits its turn for every write, and the single
    # writer is what would make the pool wait.
    os.nice(WORKER_NICENESS)
    limit_worker_memory(config.memory_limit)
    frames_fd = handoff.open_file()
    conn.send(_READY if frames_fd is None else _READY_WITH_FILE)
    if frames_fd is not None:
        handoff.send_file(conn, frames_fd)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(handoff.pack(config.job(task, **config.kwargs), frames_fd))


class WorkerPool:
    """Runs tasks on `workers` processes; `run()` yields results as they finish (any order)."""

    def __init__(self, *, workers: int, config: WorkerConfig, timeout: float) -> None:
        self.size = workers
        self.config = config
        self.timeout = timeout
        self.replaced = 0
        self._ctx = mp.get_context("forkserver")
        self._workers: list[_Worker] = []

    def __enter__(self) -> WorkerPool:
        self._workers = [self._spawn() for _ in range(self.size)]
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self._workers:
            self._stop(worker, graceful=exc[0] is None)
        self._workers = []

    def run(self, tasks: Iterable[VideoTask]) -> Iterator[VideoResult]:
        queue = iter(tasks)
        while True:
            self._fill(queue)
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                return
            results = list(self._collect(busy))
            # Idle workers get their next video before the caller spends time on these results
            # (assembling, writing a shard), so decoding never waits for the writer.
            self._fill(queue)
            yield from results

    def _fill(self, queue: Iterator[VideoTask]) -> None:
        for worker in self._workers:
            if worker.task is None:
                task = next(queue, None)
                if task is None:
                    return
                self._assign(worker, task)

    def _assign(self, worker: _Worker, task: VideoTask) -> None:
        for _ in range(3):
            try:
                worker.conn.send(task)
                break
            except (BrokenPipeError, OSError):
                # The worker died while idle (OOM killer, or it never started): replace it.
                index = self._workers.index(worker)
                self._stop(worker, graceful=False)
                worker = self._workers[index] = self._spawn()
        else:
            raise RuntimeError(_START_FAILED)
        worker.task = task
        worker.deadline = time.monotonic() + self.timeout

    def _collect(self, busy: list[_Worker]) -> Iterator[VideoResult]:
        wait_for = min(w.deadline for w in busy) - time.monotonic()
        handles = {w.conn: w for w in busy} | {w.process.sentinel: w for w in busy}
        ready = wait(list(handles), timeout=max(wait_for, 0))
        done: set[int] = set()
        for handle in ready:
            worker = handles[handle]
            if id(worker) in done:
                continue
            done.add(id(worker))
            yield self._receive(worker)
        now = time.monotonic()
        for worker in busy:
            if id(worker) not in done and worker.task is not None and now >= worker.deadline:
                yield self._replace(worker, f"timed out after {self.timeout:g}s while decoding {worker.task.uri}",
                                    kind="worker.timeout")

    def _receive(self, worker: _Worker) -> VideoResult:
        task = worker.task
        try:
            message = worker.conn.recv() if worker.conn.poll() else None
        except (EOFError, OSError):
            message = None
        if message is not None:
            try:
                result = handoff.unpack(message, worker.frames_fd)
            except OSError as exc:
                return self._replace(worker, f"reading the frames of {task.uri} from its worker failed: {exc}",
                                     kind="worker.crashed")
            worker.task = None
            return result
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return self._replace(worker, f"worker crashed ({reason}) while decoding {task.uri}{self._memory_note()}",
                             kind="worker.crashed")

    def _memory_note(self) -> str:
        limit = self.config.memory_limit
        if limit is None:
            return ""
        # A failed allocation in C code that does not check for one ends in a segfault or abort.
        return (
            f"; a worker that reaches its address-space ceiling ({WORKER_MEMORY_OPTION} {limit} bytes) "
            f"can die this way: raise {WORKER_MEMORY_OPTION} if the video is legitimate"
        )

    def _replace(self, worker: _Worker, error: str, *, kind: str) -> VideoResult:
        task = worker.task
        self._stop(worker, graceful=False)
        index = self._workers.index(worker)
        self._workers[index] = self._spawn()
        self.replaced += 1
        return failed(task, error, kind=kind)

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child, self.config), daemon=True)
        process.start()
        child.close()
        # Waiting for the worker's first word turns a worker that cannot start (a script without a
        # main guard, a broken environment) into one clear error instead of a failed row per video.
        try:
            word = parent.recv() if parent.poll(START_TIMEOUT_S) else None
            frames_fd = handoff.receive_file(parent) if word == _READY_WITH_FILE else None
        except (EOFError, OSError):
            word = None
        if word not in (_READY, _READY_WITH_FILE):
            process.kill()
            raise RuntimeError(_START_FAILED)
        return _Worker(process=process, conn=parent, frames_fd=frames_fd)

    def _stop(self, worker: _Worker, *, graceful: bool) -> None:
        if graceful and worker.process.is_alive():
            try:
                worker.conn.send(None)
                worker.process.join(timeout=2)
            except (BrokenPipeError, OSError):
                pass
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=5)
        worker.conn.close()
        if worker.frames_fd is not None:
            os.close(worker.frames_fd)
