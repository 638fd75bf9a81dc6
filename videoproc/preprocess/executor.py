"""Executors turn planned shards into written shards. The local one (here) runs a process pool; the
Ray one (videoproc.preprocess.executor_ray) runs one task per shard on a cluster. Both yield
ShardOutcomes and leave committing to the job, which owns the run state and picks the executor
(job.make_executor)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import pyarrow as pa

from videoproc.preprocess.manifest import GroupCache
from videoproc.preprocess.options import PreprocessOptions
from videoproc.preprocess.pool import WorkerConfig, WorkerPool
from videoproc.preprocess.runstate import RunState
from videoproc.preprocess.shards import LoadedShard, ShardAssembler, ShardOutcome, ShardWork
from videoproc.video.process import VideoResult, VideoTask, process_video

OnResult = Callable[[VideoResult], None]

# What a worker runs for each video: process_video. A module attribute, read when a run starts and
# shipped to the workers (Ray's too) by reference, so that a test can swap in a wrapper that really
# segfaults or hangs on marked URIs (tests/hooks.py); the library itself never changes it.
VIDEO_JOB: Callable[..., VideoResult] = process_video


class Executor(Protocol):
    def run(
        self, works: Sequence[ShardWork], *, schema: pa.Schema, state: RunState, on_result: OnResult
    ) -> Iterator[ShardOutcome]: ...


class LocalExecutor:
    """Videos go to a pool of worker processes; the parent assembles and writes shards in order.

    The parent reads each shard's rows from the manifest when the pool asks for its first video,
    so only the shards in flight (one or two ahead of the pool) are ever in memory."""

    def __init__(self, options: PreprocessOptions) -> None:
        self.options = options

    def run(
        self, works: Sequence[ShardWork], *, schema: pa.Schema, state: RunState, on_result: OnResult
    ) -> Iterator[ShardOutcome]:
        run = self.options.run
        threads = run.threads_per_decoder()
        config = WorkerConfig(
            job=VIDEO_JOB,
            kwargs={"video": self.options.video, "source": self.options.source, "threads": threads},
            memory_limit=self.options.worker_memory_limit(threads=threads),
        )
        starts = [w.shard.start for w in works]
        open_shards: dict[int, ShardAssembler] = {}
        loaded: dict[int, LoadedShard] = {}
        tasks = _stream_tasks(works, loaded)
        with WorkerPool(workers=min(run.workers, max(1, sum(w.todo for w in works))), config=config,
                        timeout=run.timeout) as pool:
            try:
                for result in pool.run(tasks):
                    on_result(result)
                    k = bisect.bisect_right(starts, result.row) - 1
                    if k not in open_shards:
                        open_shards[k] = ShardAssembler(
                            loaded.pop(k), schema=schema, final=state.data_file(works[k].shard),
                            write_retries=run.write_retries
                        )
                    assembler = open_shards[k]
                    assembler.add(result)
                    if assembler.complete:
                        yield open_shards.pop(k).finish()
            finally:
                for assembler in open_shards.values():
                    assembler.abort()



def _stream_tasks(works: Sequence[ShardWork], loaded: dict[int, LoadedShard]) -> Iterable[VideoTask]:
    """Every task of every shard, each shard read (into `loaded`) just before its first task is taken."""
    cache = GroupCache()  # consecutive shards mostly share a row group: read it once
    for k, work in enumerate(works):
        loaded[k] = work.load(cache=cache)
        yield from loaded[k].tasks
