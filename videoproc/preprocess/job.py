"""The preprocess job: the one place that wires manifest, plan, run state and executor together.

Everything that reads or changes the output (the --overwrite wipe, run.json, partial-file cleanup,
each commit, the summary) happens while the output's lock is held (videoproc.common.runlock), and the
lease is checked before every commit, so a run whose lock was broken stops committing."""

from __future__ import annotations

import multiprocessing
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from videoproc.common import storage
from videoproc.common.progress import Progress
from videoproc.common.runlock import Lease, LockLost, hold_output
from videoproc.preprocess.executor import Executor, LocalExecutor
from videoproc.preprocess.manifest import ManifestIndex, read_manifest
from videoproc.preprocess.options import PreprocessOptions
from videoproc.preprocess.runstate import RunState, Shard, plan_shards
from videoproc.preprocess.shards import ShardWork
from videoproc.preprocess.summary import run_counts, summarize
from videoproc.preprocess.write import output_schema
from videoproc.video.process import VideoResult


@dataclass(frozen=True, kw_only=True)
class RunReport:
    summary: dict[str, Any]
    exit_code: int  # an ExitCode (videoproc.common.exitcodes)


def run_preprocess(options: PreprocessOptions, *, stream: TextIO | None = None) -> RunReport:
    """Run (or resume) a preprocess job to completion; see the README for the exit codes."""
    _refuse_in_worker_bootstrap()
    started = time.monotonic()
    manifest = read_manifest(
        options.manifest, uri_column=options.uri_column, id_column=options.id_column,
        storage_options=options.source.storage_options,
    )
    state = RunState(storage.locate(options.output, storage_options=options.source.storage_options))
    executor = make_executor(options)  # an executor that cannot run fails before run.json exists
    run = options.run
    with hold_output(state.output, stage="preprocess", break_lock=run.break_lock, lease_s=run.lock_lease,
                     log=stream or sys.stderr) as lease:
        if run.overwrite:
            state.wipe()
        shards = plan_shards(manifest.num_rows, run.shard_size)
        resumed = state.begin(
            shards=shards, shard_size=run.shard_size, manifest=manifest.fingerprint(),
            fingerprint=options.result_fingerprint(), options=options.to_dict(),
        )
        state.clean_partials()
        works = _plan_work(manifest, shards, state, retry_failed=run.retry_failed)
        try:
            errors = _execute(options, executor, manifest, state, works, stream, lease)
        except LockLost:
            raise  # the output is another run's now: its temporary files are not ours to remove
        except BaseException:
            # Ctrl-C can land between a shard writer creating its hidden temporary file and the
            # executor tracking it for abort; we still hold the lock, so every temporary file
            # under data/ is this run's or a dead run's.
            state.clean_partials()
            raise
        summary = summarize(
            state.committed(), shards=shards, resumed=resumed, elapsed_s=time.monotonic() - started,
            output=state.output.url, write_errors=errors,
        )
        summary["run_id"] = state.run_id
        lease.check()
        state.write_summary(summary)
    return RunReport(summary=summary, exit_code=run_counts(summary).exit_code())


def _refuse_in_worker_bootstrap() -> None:
    """Worker processes start by importing the caller's main module; a script that runs a job at
    top level would start the job again inside each of them."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "run_preprocess was called while a worker process was starting, because the script "
            "runs it at import time; put the call under `if __name__ == \"__main__\":`"
        )


def _plan_work(manifest: ManifestIndex, shards: tuple[Shard, ...], state: RunState,
               *, retry_failed: bool) -> list[ShardWork]:
    """The shards to run, each naming its rows only: whoever runs a shard reads them (ShardWork.load)."""
    committed = state.committed()
    works = []
    for shard in shards:
        if shard.name not in committed:
            works.append(ShardWork(shard=shard, manifest=manifest))
        elif retry_failed and committed[shard.name].get("failed", 0):
            works.append(_retry_work(manifest, shard, state))
    return works


def _retry_work(manifest: ManifestIndex, shard: Shard, state: RunState) -> ShardWork:
    """Redo only the failed rows of a committed shard; its ok rows are carried over unchanged."""
    loc = state.data_file(shard)
    statuses, clips = _video_statuses(loc)
    positions = range(shard.start, shard.stop)
    keep = frozenset(p for p, status in zip(positions, statuses, strict=True) if status == "ok")
    return ShardWork(shard=shard, manifest=manifest, keep=keep, retried=len(positions) - len(keep), kept_clips=clips)


def _video_statuses(loc: storage.Location) -> tuple[list[str], int]:
    """The status of each manifest position of a committed shard, and its ok clip rows. In clip
    mode a video has a row per clip, and its rows start at clip_index 0 (or null: failed, skipped)."""
    table = storage.read_parquet(loc, columns=["status", "clip_index"])  # absent outside clip mode
    statuses = table.column("status").to_pylist()
    if "clip_index" not in table.column_names:
        return statuses, 0
    indices = table.column("clip_index").to_pylist()
    firsts = [s for s, i in zip(statuses, indices, strict=True) if i in (None, 0)]
    return firsts, sum(1 for s, i in zip(statuses, indices, strict=True) if s == "ok" and i is not None)


def make_executor(options: PreprocessOptions) -> Executor:
    """The executor options.run.executor names; the Ray one imports Ray (and fails without it) here."""
    if options.run.executor == "ray":
        from videoproc.preprocess.executor_ray import RayExecutor

        return RayExecutor(options)
    return LocalExecutor(options)


def _execute(options: PreprocessOptions, executor: Executor, manifest: ManifestIndex, state: RunState,
             works: list[ShardWork], stream, lease: Lease) -> list[str]:
    """Run the work, committing each shard as it lands; returns the storage errors met."""
    if not works:
        return []
    progress = Progress(total=sum(w.todo for w in works), mode=options.run.progress,
                        **({"stream": stream} if stream else {}))

    def on_result(result: VideoResult) -> None:
        progress.advance(ok=result.status != "failed", note=result.id)

    errors = []
    schema = output_schema(manifest.passthrough_schema, clips=options.video.clips is not None,
                           store=options.video.store)
    try:
        for outcome in executor.run(works, schema=schema, state=state, on_result=on_result):
            if outcome.stats is None:
                errors.append(outcome.error or f"shard {outcome.shard.name} was not written")
            else:
                lease.check()
                state.commit(outcome.shard, outcome.stats)
    finally:
        progress.close()
    return errors

