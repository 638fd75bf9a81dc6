"""The queue loop: read and validate the queue, lock the output, generate what is not done yet.

Each request runs through `worker.run_request`: in this process with the local executor, on the
actors of executor_ray with `--executor ray`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from videoproc.common.counts import RunCounts
from videoproc.common.errors import OptionsError, ResumeError
from videoproc.common.progress import Progress
from videoproc.common.storage import Location, exists, locate, read_json, remove, write_json_atomic
from videoproc.generate import records as rec
from videoproc.generate.engines import open_engine, resolve_device, resolve_dtype
from videoproc.generate.lock import Lease, output_lock
from videoproc.generate.models import resolve_models
from videoproc.generate.options import GenerateOptions
from videoproc.generate.requests import Queue, QueueError, read_queue, record_key
from videoproc.generate.worker import DEMO_NOTE, Outcome, Worker, close_engines, open_engines, run_request

_SETTINGS_THAT_MUST_MATCH = ("engine", "models", "dtype", "fit")


class OptionsChanged(ResumeError):
    """The output folder was started with other settings; mixing them would mix videos."""


@dataclass(kw_only=True)
class RunSummary:
    """Counts of one run, and seconds spent per phase (`engine`, `encode`, `record`, ...).

    `not_run` counts requests left without a record because the Ray actors that could run them
    were lost; a re-run picks them up. `earlier_records` counts record files of no current queue
    row (left by rows edited since), which stay in records/ and are not in records.parquet.
    """

    output: str
    total: int = 0
    skipped: int = 0
    completed: int = 0
    failed: int = 0
    not_run: int = 0
    earlier_records: int = 0
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def add_time(self, phase: str, seconds: float) -> None:
        self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + seconds

    def line(self) -> str:
        lost = f", {self.not_run} not run (re-run to finish them)" if self.not_run else ""
        earlier = (f" ({self.earlier_records} earlier records of edited rows stay in records/, left out)"
                   if self.earlier_records else "")
        return (f"{self.completed} completed, {self.failed} failed, {self.skipped} already done{lost} "
                f"of {self.total} requests in {self.seconds:.1f} s; records: {self.output}/records.parquet{earlier}")

    def counts(self) -> RunCounts:
        """The counts both stages report, and so the exit status: requests done earlier count as ok."""
        return RunCounts(total=self.total, ok=self.completed + self.skipped, failed=self.failed, left=self.not_run)


def run(opts: GenerateOptions, *, log: TextIO = sys.stderr, engine_factory=open_engine,
        draw_seed: Callable[[], int] = lambda: secrets.randbelow(2**32)) -> RunSummary:
    """Generate every request of `opts.queue` that `opts.output` does not hold as completed yet,
    in this process or, with `opts.executor == "ray"`, on the actors of a Ray cluster."""
    started = time.perf_counter()
    summary = RunSummary(output=_locate_output(opts).url)
    queue = _timed(summary, "queue_read", lambda: read_queue(opts.queue, storage_options=opts.storage_options))
    _check_columns(queue)
    models = resolve_models(opts.models)
    with _cluster(opts, log) as cluster:
        device = cluster.device if cluster else resolve_device(opts.engine, opts.device)
        dtype = resolve_dtype(opts.dtype, device)
        out = _locate_output(opts)
        worker = Worker(opts=opts, out=out, models=models, passthrough_names=tuple(f.name for f in queue.passthrough),
                        device=device, dtype=dtype, schema=rec.record_schema(queue.passthrough), draw_seed=draw_seed)
        with output_lock(out, break_lock=opts.break_lock, lease_s=opts.lock_lease, log=log) as lease:
            _check_settings(out, _settings(opts, models, device, dtype))
            _remove_partials(out)
            todo = _pending(queue, out, summary)
            _announce(models, opts, device, dtype, len(todo), summary, log, cluster)
            _run_todo(queue.rows, todo, worker, cluster, summary, log, engine_factory, lease)
            lease.check()
            _consolidate(queue, worker, summary)
    summary.seconds = time.perf_counter() - started
    return summary


@contextlib.contextmanager
def _cluster(opts: GenerateOptions, log: TextIO):
    """The Ray cluster the queue runs on, connected for the whole run; None for the local executor."""
    if opts.executor != "ray":
        yield None
        return
    from videoproc.generate.executor_ray import connect

    with connect(opts, log=log) as cluster:
        yield cluster


def _run_todo(rows: list[dict], todo: list[int], worker: Worker, cluster, summary: RunSummary, log: TextIO,
              engine_factory, lease: Lease) -> None:
    progress = Progress(total=len(todo), label="requests", mode=worker.opts.progress, stream=log)

    def on_outcome(outcome: Outcome) -> None:
        # A run whose lock was broken stops here, before its next request (on Ray, requests already
        # on an actor may still record: the same request and settings give the same record key).
        lease.check()
        for phase, seconds in outcome.phase_seconds.items():
            summary.add_time(phase, seconds)
        _count(outcome, summary, progress)

    try:
        if cluster is not None:
            summary.not_run = cluster.run(rows, todo, worker, engine_factory=engine_factory, on_outcome=on_outcome)
        elif todo:
            worker.progress = progress
            summary.add_time("engine_open", open_engines(worker, engine_factory))
            _run_local(rows, todo, worker, on_outcome)
    finally:
        progress.close()


def _run_local(rows: list[dict], todo: list[int], worker: Worker, on_outcome: Callable[[Outcome], None]) -> None:
    try:
        for row in todo:
            on_outcome(run_request(rows[row], row, worker))
    finally:
        close_engines(worker)


def _count(outcome: Outcome, summary: RunSummary, progress: Progress) -> None:
    ok = outcome.status == "completed"
    summary.completed += ok
    summary.failed += not ok
    note = f"{outcome.id[:30]} {outcome.inference_time_s or 0:.1f} s" if ok else f"{outcome.id[:30]} failed"
    progress.advance(ok=ok, note=note)


def _pending(queue: Queue, out: Location, summary: RunSummary) -> list[int]:
    done = _timed(summary, "resume_scan", lambda: rec.completed_keys(out))
    keys = _keys(queue)
    summary.total = len(keys)
    summary.skipped = sum(key in done for key in keys)
    return [row for row, key in enumerate(keys) if key not in done]


def _consolidate(queue: Queue, worker: Worker, summary: RunSummary) -> None:
    """records.parquet: the record of each current queue row, in queue order."""
    def write() -> None:
        summary.earlier_records = rec.consolidate(worker.out, keys=_keys(queue), schema=worker.schema)

    _timed(summary, "consolidate", write)


def _locate_output(opts: GenerateOptions) -> Location:
    try:
        return locate(opts.output, storage_options=opts.storage_options)
    except (ValueError, ImportError) as exc:  # an unknown scheme, or one whose fsspec package is missing
        raise OptionsError(f"output {opts.output!r} is not usable: {exc}; pass a local folder or an "
                           "fsspec URL such as s3://bucket/prefix") from None


def _keys(queue: Queue) -> list[str]:
    return [record_key(raw, row) for row, raw in enumerate(queue.rows)]


def _check_columns(queue: Queue) -> None:
    clashes = rec.colliding_columns(queue.passthrough)
    if clashes:
        raise QueueError(f"queue columns {clashes} would overwrite record fields of the same names; "
                         "rename those columns (e.g. with a 'queue_' prefix)")


def _settings(opts: GenerateOptions, models, device: str, dtype: str) -> dict:
    return {"engine": opts.engine, "models": [{"name": m.name, "path": m.path, "class": m.class_name} for m in models],
            "dtype": dtype, "device": device, "fit": opts.fit, "queue": opts.queue,
            "limits": {"max_width": opts.limits.max_width, "max_height": opts.limits.max_height,
                       "max_frames": opts.limits.max_frames}}


def _check_settings(out: Location, settings: dict) -> None:
    """Save the settings with a new output, with a run id; refuse to resume one made with other
    settings. Runs under the output's lock, so two runs cannot both find run.json absent."""
    loc = out.child("run.json")
    if not exists(loc):
        write_json_atomic(loc, {**settings, "run_id": uuid.uuid4().hex})
        return
    saved = read_json(loc)
    changed = [k for k in _SETTINGS_THAT_MUST_MATCH if saved.get(k) != settings[k]]
    if changed:
        diffs = "; ".join(f"{k}: was {json.dumps(saved.get(k))}, now {json.dumps(settings[k])}" for k in changed)
        raise OptionsChanged(f"output {out.url} was started with other settings ({diffs}); resume with the "
                             "same --engine/--model/--dtype/--fit, or use a new --output")


def _remove_partials(out: Location) -> None:
    # Left by a run killed while encoding; we hold the lock, so nobody else is writing them.
    videos = out.child("videos")
    for name in _all_names(videos):
        if name.endswith(".partial.mp4"):
            remove(videos.child(name))


def _all_names(loc: Location) -> list[str]:
    try:
        return [e.rsplit("/", 1)[-1] for e in loc.fs.ls(loc.path, detail=False)]
    except FileNotFoundError:
        return []


def _announce(models, opts, device, dtype, todo, summary, log, cluster) -> None:
    if opts.progress == "off":
        return
    where = f" {cluster.describe()}" if cluster else ""
    print(f"generate: {todo} to do, {summary.skipped} already done; engine {opts.engine} on {device} "
          f"({dtype}){where}; models: {', '.join(m.name for m in models)}", file=log, flush=True)
    if any(m.is_demo for m in models):
        print(f"note: tiny-random videos are a {DEMO_NOTE}", file=log, flush=True)


def _timed(summary: RunSummary, phase: str, fn):
    started = time.perf_counter()
    try:
        return fn()
    finally:
        summary.add_time(phase, time.perf_counter() - started)


