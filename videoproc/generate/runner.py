"""The queue loop: read and validate the queue, lock the output, generate what is not done yet.

`run_request` is the whole of one request (validate, generate, encode, record); the local loop calls
it in this process, and with `--executor ray` each actor of executor_ray calls it on its own GPU.

Order of writes for one request: the MP4 (partial file, then rename or one upload), then its record
file. A run killed between the two leaves a video without a record; the next run redoes the request
and overwrites the video, so a request is recorded at most once and never half.
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
from importlib import metadata
from typing import TextIO

from videoproc.common.progress import Progress
from videoproc.common.storage import Location, exists, locate, read_json, read_parquet, remove, write_json_atomic
from videoproc.generate import records as rec
from videoproc.generate.encode import write_video
from videoproc.generate.engines import Engine, EngineCall, open_engine, resolve_device, resolve_dtype
from videoproc.generate.lock import Lease, output_lock
from videoproc.generate.models import ModelRef, resolve_models
from videoproc.generate.options import GenerateOptions
from videoproc.generate.reference import load_reference
from videoproc.generate.requests import (
    Queue,
    QueueError,
    Rejected,
    Request,
    RequestError,
    read_queue,
    record_key,
    request_id,
    resolve_request,
)
from videoproc.source.options import SourceOptions

DEMO_NOTE = "random-weight demo output of the built-in tiny-random model, not a trained model"
_SETTINGS_THAT_MUST_MATCH = ("engine", "models", "dtype", "fit")


class OptionsChanged(ValueError):
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


@dataclass(kw_only=True)
class Worker:
    """What running one request needs. The local loop holds one; each Ray actor gets a copy and
    fills its own `engines`. `progress` shows per-step progress; None where nobody watches (actors)."""

    opts: GenerateOptions
    out: Location
    models: tuple[ModelRef, ...]
    passthrough_names: tuple[str, ...]
    device: str
    dtype: str
    schema: object
    draw_seed: Callable[[], int]
    engines: dict[str, Engine] = field(default_factory=dict)
    progress: Progress | None = None

    @property
    def references(self) -> SourceOptions:
        """The rules `input_reference` images are read with."""
        return self.opts.reference_source()


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What the queue loop learns of one request once its MP4 and record are written: a few bytes,
    so that it can come back from a Ray actor (videos and records never pass through the driver)."""

    id: str
    key: str
    status: str
    inference_time_s: float | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)


def run(opts: GenerateOptions, *, log: TextIO = sys.stderr, engine_factory=open_engine,
        draw_seed: Callable[[], int] = lambda: secrets.randbelow(2**32)) -> RunSummary:
    """Generate every request of `opts.queue` that `opts.output` does not hold as completed yet,
    in this process or, with `opts.executor == "ray"`, on the actors of a Ray cluster."""
    started = time.perf_counter()
    summary = RunSummary(output=locate(opts.output, storage_options=opts.storage_options).url)
    queue = _timed(summary, "queue_read", lambda: read_queue(opts.queue, storage_options=opts.storage_options))
    _check_columns(queue)
    models = resolve_models(opts.models)
    with _cluster(opts, log) as cluster:
        device = cluster.device if cluster else resolve_device(opts.engine, opts.device)
        dtype = resolve_dtype(opts.dtype, device)
        out = locate(opts.output, storage_options=opts.storage_options)
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


def run_request(raw: dict, row: int, worker: Worker) -> Outcome:
    """One queue row, start to end: validate, generate, publish the MP4, then commit its record.
    Engine and request errors become a failed record; storage errors propagate."""
    phases: dict[str, float] = {}
    started = time.perf_counter()
    request = resolve_request(raw, row=row, models=worker.models, limits=worker.opts.limits, fit=worker.opts.fit,
                              draw_seed=worker.draw_seed, passthrough_names=worker.passthrough_names)
    phases["validate"] = time.perf_counter() - started
    record = _rejected_record(request) if isinstance(request, Rejected) else _generate(request, worker, phases)
    started = time.perf_counter()
    rec.write_record(worker.out, request.key, record, worker.schema)
    phases["record"] = time.perf_counter() - started
    return Outcome(id=record.id, key=request.key, status=record.status, inference_time_s=record.inference_time_s,
                   phase_seconds=phases)


def completed_record(raw: dict, row: int, worker: Worker) -> Outcome | None:
    """The outcome of a row whose `completed` record is already committed, else None. Asked when a
    Ray actor died before answering: it may have died just after committing. Only `completed`
    counts, since a failed record may be a previous run's."""
    key = record_key(raw, row)
    if _recorded_status(worker.out, key) != "completed":
        return None
    return Outcome(id=request_id(raw, row), key=key, status="completed")


def record_lost(raw: dict, row: int, worker: Worker, error: str) -> Outcome:
    """Commit a failed record with `error` for a row that never came back (the Ray actors running
    it died), so that it is counted and a re-run retries it."""
    rejected = Rejected(row=row, id=request_id(raw, row), key=record_key(raw, row), error=error, raw=raw,
                        passthrough={name: raw.get(name) for name in worker.passthrough_names})
    rec.write_record(worker.out, rejected.key, _rejected_record(rejected), worker.schema)
    return Outcome(id=rejected.id, key=rejected.key, status="failed")


def _recorded_status(out: Location, key: str) -> str | None:
    loc = rec.records_folder(out).child(f"{key}.parquet")
    if not exists(loc):
        return None
    return read_parquet(loc, columns=["status"]).column("status")[0].as_py()


def open_engines(worker: Worker, factory) -> float:
    """Open every model before the first request, so that a missing package or a bad folder stops
    the run at the start instead of failing each request; returns the seconds it took."""
    started = time.perf_counter()
    for model in worker.models:
        worker.engines[model.name] = factory(worker.opts.engine, model=model, device=worker.device, dtype=worker.dtype)
    return time.perf_counter() - started


def close_engines(worker: Worker) -> None:
    for engine in worker.engines.values():
        getattr(engine, "close", lambda: None)()


def _generate(request: Request, worker: Worker, phases: dict[str, float]) -> rec.VideoRecord:
    try:
        engine = worker.engines[request.model.name]
        image = load_reference(request.input_reference, options=worker.references) if request.input_reference else None
        started = time.perf_counter()
        frames = engine.generate(_call(request, image), on_step=_step_reporter(request, worker.progress))
        inference = time.perf_counter() - started
    except RequestError as exc:
        return _failed(request, str(exc), worker)
    except Exception as exc:  # noqa: BLE001 - an engine failure fails this request; the queue goes on
        return _failed(request, f"{type(exc).__name__}: {exc}", worker)
    phases["engine"] = inference
    started = time.perf_counter()
    video = write_video(frames, worker.out.child("videos", f"{request.key}.mp4"), fps=request.fps,
                        want_b64=request.response_format == "b64_json",
                        comment=DEMO_NOTE if request.model.is_demo else None)
    encode = time.perf_counter() - started
    phases["encode"] = encode
    count, height, width, _ = frames.shape
    return rec.VideoRecord(
        **_request_fields(request), status="completed", url=video.url, b64_json=video.b64,
        sha256=video.sha256, bytes=video.bytes, inference_time_s=round(inference, 4),
        encode_time_s=round(encode, 4), width=width, height=height, num_frames=count,
        **_engine_fields(request, worker),
    )


def _failed(request: Request, error: str, worker: Worker) -> rec.VideoRecord:
    return rec.VideoRecord(**_request_fields(request), status="failed", error=error,
                           width=request.width, height=request.height, num_frames=request.num_frames,
                           **_engine_fields(request, worker))


def _request_fields(request: Request) -> dict:
    return dict(
        id=request.id, key=request.key, created=int(time.time()), queue_row=request.row, model=request.model.name,
        prompt=request.prompt, negative_prompt=request.negative_prompt, input_reference=request.input_reference,
        response_format=request.response_format, user=request.user, seed=request.seed,
        seed_drawn=request.seed_drawn, fps=request.fps, num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale, adjustment=request.adjustment, passthrough=request.passthrough,
    )


def _engine_fields(request: Request, worker: Worker) -> dict:
    engine = worker.engines.get(request.model.name)
    if engine is None:
        return dict(engine=worker.opts.engine, device=worker.device, dtype=worker.dtype)
    versions = engine.versions()
    versions["videoproc"] = _videoproc_version()
    return dict(engine=engine.name, engine_version=next(iter(versions.values())), device=worker.device,
                dtype=worker.dtype, library_versions=" ".join(f"{k}={v}" for k, v in versions.items()))


def _rejected_record(rejected: Rejected) -> rec.VideoRecord:
    raw = rejected.raw
    return rec.VideoRecord(
        id=rejected.id, key=rejected.key, status="failed", error=rejected.error, created=int(time.time()),
        queue_row=rejected.row,
        model=_text(raw.get("model")), prompt=_text(raw.get("prompt")),
        negative_prompt=_text(raw.get("negative_prompt")), input_reference=_text(raw.get("input_reference")),
        response_format=_text(raw.get("response_format")), user=_text(raw.get("user")),
        passthrough=rejected.passthrough,
    )


def _call(request: Request, image) -> EngineCall:
    return EngineCall(prompt=request.prompt, negative_prompt=request.negative_prompt, width=request.width,
                      height=request.height, num_frames=request.num_frames, fps=request.fps,
                      num_inference_steps=request.num_inference_steps, guidance_scale=request.guidance_scale,
                      seed=request.seed, image=image)


def _step_reporter(request: Request, progress: Progress | None):
    if progress is None or progress.mode != "bar":
        return None
    started = time.perf_counter()

    def report(step: int, total: int) -> None:
        text = f"\r  {request.id[:40]}: step {step}/{total} {time.perf_counter() - started:.1f} s"
        progress.stream.write(text.ljust(110))
        progress.stream.flush()

    return report


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


def _text(value) -> str | None:
    return value if isinstance(value, str) else (None if value is None else str(value))


def _videoproc_version() -> str:
    try:
        return metadata.version("videoproc")
    except metadata.PackageNotFoundError:
        return "unknown"
