"""The Ray executor: one Ray task per planned shard, on an existing cluster.

A task processes the videos of its shard, assembles them in manifest order and publishes the shard
file straight to the output storage, so frames never pass through the driver; it returns only the
shard's stats and one small (row, status, error, error_kind) tuple per video. The driver hands the outcomes to
the job as tasks finish, and the job writes each completion marker. One task per shard, never per
video: Ray's per-task overhead (seconds on a small machine) would dwarf decoding a short clip.

Why a retried task cannot duplicate rows. Ray re-runs a task whose node died (up to
TASK_MAX_RETRIES times). Every attempt of shard k writes the same rows, in the same order, to one
file named after k (data/part-k.parquet), through a hidden temporary file published atomically
under that final name (a rename locally, a single PUT on object storage). The completion marker is
written by the driver alone, after it received an attempt's outcome. So whichever attempts ran,
and however far a killed one got, the output holds either no file for k (no marker: the next run
redoes it), a left-over hidden temporary (skipped by readers, removed by the next run), or one
complete file of exactly the shard's rows, which a later attempt replaces with identical bytes.
Rows are never appended anywhere, so there is nothing to duplicate.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from videoproc.common import storage
from videoproc.common.ray_cluster import enter_driver_folder, first_line, import_ray, joined, not_shared
from videoproc.preprocess import executor as local_executor
from videoproc.preprocess.executor import OnResult
from videoproc.preprocess.options import PreprocessOptions
from videoproc.preprocess.pool import WorkerConfig, WorkerPool
from videoproc.preprocess.runstate import RunState
from videoproc.preprocess.shards import ShardAssembler, ShardOutcome, ShardWork
from videoproc.video.process import VideoResult, VideoTask, process_video

# Ray's own default, spelled out: a task lost with its node is re-run this many times on the others.
TASK_MAX_RETRIES = 3
# Shards submitted ahead of the free CPUs: enough to keep every node busy between ray.wait calls,
# few enough that a long manifest's task arguments do not all sit in the object store at once.
IN_FLIGHT_PER_CPU = 2
RowStatus = tuple[int, str, str, str, str | None, str | None]  # row, id, uri, status, error, error_kind


def run_shard(
    work: ShardWork, *, schema: pa.Schema, final_url: str, options: PreprocessOptions, folder: str,
    job: Callable[..., VideoResult] = process_video,
) -> tuple[ShardOutcome, list[RowStatus]]:
    """What one Ray task runs: process, assemble and publish one shard; return its stats.

    Each video runs in a single child process (a WorkerPool of one) rather than in the Ray worker
    itself. The task holds one CPU, so one video at a time is the right parallelism; the child is
    what isolates the shard from its videos: a decoder segfault or a video hanging past --timeout
    fails that row only, with the same error text as the local executor. Run in the Ray worker, a
    segfault would kill the task, Ray would retry it on the same video, and the shard could never
    complete; a hang would hold the shard forever. The child starts once per shard, not per video.

    folder: the driver's working folder, against which relative paths in the manifest resolve.
    job: what runs each video (the driver's executor.VIDEO_JOB).
    """
    final = storage.locate(final_url, storage_options=options.source.storage_options)
    try:
        loaded = work.load()
    except (OSError, pa.ArrowInvalid) as exc:
        # The node cannot see the manifest (a local file on the driver alone): the shard stays
        # uncommitted and the run says why, rather than failing as a bug in the task.
        error = (f"shard {work.shard.name}: a Ray worker cannot read the manifest ({first_line(exc)}); the "
                 "manifest must be where every node reads it: object storage, or a shared filesystem at the same path")
        return ShardOutcome(shard=work.shard, stats=None, error=error), []
    assembler = ShardAssembler(loaded, schema=schema, final=final, write_retries=options.run.write_retries)
    statuses: list[RowStatus] = []
    try:
        with WorkerPool(workers=1, config=_worker_config(options, folder, job), timeout=options.run.timeout) as pool:
            for result in pool.run(loaded.tasks):
                statuses.append((result.row, result.id, result.uri, result.status, result.error, result.error_kind))
                assembler.add(result)
        if not assembler.complete:
            raise RuntimeError(
                f"shard {work.shard.name}: the pool returned {len(statuses)} of {len(loaded.tasks)} rows"
            )
        return assembler.finish(), statuses
    except BaseException:
        assembler.abort()
        raise


def _worker_config(options: PreprocessOptions, folder: str, job: Callable[..., VideoResult]) -> WorkerConfig:
    # One decoder thread: the task holds one CPU and Ray fills every CPU with a task.
    threads = options.run.decoder_threads or 1
    kwargs = {"folder": folder, "job": job, "video": options.video, "source": options.source, "threads": threads}
    # The ceiling applies in the pool's child, the one process that decodes, never in the Ray
    # worker, which Ray reuses for other tasks.
    return WorkerConfig(job=_process_in_folder, kwargs=kwargs,
                        memory_limit=options.worker_memory_limit(threads=threads))


def _process_in_folder(task: VideoTask, *, folder: str, job: Callable[..., VideoResult], **kwargs: Any) -> VideoResult:
    """process_video from the driver's working folder, so that a relative path in the manifest
    names the same file as with the local executor (Ray workers start in a folder of their own).
    The child process is private to this shard, so changing its folder affects nothing else; on a
    node where the folder does not exist, a relative path fails its row as a missing file."""
    enter_driver_folder(folder)
    return job(task, **kwargs)


class RayExecutor:
    """Runs each shard as a Ray task on the cluster at options.run.ray_address.

    ray_address: "auto" (the cluster this machine belongs to), "HOST:PORT" of the head's GCS, or
    None for Ray's default (RAY_ADDRESS, else a running local cluster, else a new local one).
    Progress is reported per video, in a burst when each shard finishes.
    """

    def __init__(self, options: PreprocessOptions) -> None:
        import_ray()  # fail before any work when the extra is missing
        self.options = options

    def run(
        self, works: Sequence[ShardWork], *, schema: pa.Schema, state: RunState, on_result: OnResult
    ) -> Iterator[ShardOutcome]:
        with joined(self.options.run.ray_address) as ray:
            yield from self._run(ray, works, schema=schema, state=state, on_result=on_result)

    def _run(
        self, ray: Any, works: Sequence[ShardWork], *, schema: pa.Schema, state: RunState, on_result: OnResult
    ) -> Iterator[ShardOutcome]:
        task = ray.remote(run_shard).options(num_cpus=1, max_retries=TASK_MAX_RETRIES, retry_exceptions=False)
        todo = list(reversed(works))
        pending: dict[Any, ShardWork] = {}
        window = max(1, IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
        try:
            while todo or pending:
                while todo and len(pending) < window:
                    work = todo.pop()
                    final_url = state.data_file(work.shard).url
                    ref = task.remote(
                        work, schema=schema, final_url=final_url, options=self.options, folder=os.getcwd(),
                        job=local_executor.VIDEO_JOB,
                    )
                    pending[ref] = work
                done, _ = ray.wait(list(pending), num_returns=1)
                work = pending.pop(done[0])
                yield self._collect(ray, done[0], work, state=state, on_result=on_result)
        finally:
            for ref in pending:
                _cancel(ray, ref)

    def _collect(self, ray: Any, ref: Any, work: ShardWork, *, state: RunState, on_result: OnResult) -> ShardOutcome:
        try:
            outcome, statuses = ray.get(ref)
        except ray.exceptions.RayTaskError:
            raise  # a bug in the task's own code: fail loudly, as the local executor would
        except ray.exceptions.RayError as exc:
            # Lost after its retries (nodes gone, worker killed): the shard stays uncommitted and
            # the next run redoes it.
            error = f"shard {work.shard.name} was lost on the Ray cluster ({first_line(exc)}); re-run to finish it"
            return ShardOutcome(shard=work.shard, stats=None, error=error)
        for row, id_, uri, status, error, kind in statuses:
            on_result(VideoResult(row=row, id=id_, uri=uri, status=status, error=error, error_kind=kind))
        data = state.data_file(work.shard)
        if outcome.stats is not None and not storage.exists(data):
            error = not_shared(f"shard {work.shard.name} was written by a Ray worker", data.url)
            return ShardOutcome(shard=work.shard, stats=None, error=error)
        return outcome


def _cancel(ray: Any, ref: Any) -> None:
    # An interrupted or failed run must not leave tasks decoding on the cluster; a task that just
    # finished cannot be cancelled, which is fine.
    with contextlib.suppress(Exception):
        ray.cancel(ref, force=True)
