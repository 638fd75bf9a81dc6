"""The queue loop: read and validate the queue, lock the output, generate what is not done yet.

Order of writes for one request: the MP4 (partial file, then rename or one upload), then its record
file. A run killed between the two leaves a video without a record; the next run redoes the request
and overwrites the video, so a request is recorded at most once and never half.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, TextIO

from videoproc.generate import records as rec
from videoproc.generate.encode import write_video
from videoproc.generate.engines import Engine, EngineCall, open_engine, resolve_device, resolve_dtype
from videoproc.generate.lock import output_lock
from videoproc.generate.models import ModelRef, resolve_models
from videoproc.generate.options import GenerateOptions
from videoproc.generate.reference import load_reference
from videoproc.generate.requests import Queue, QueueError, Rejected, Request, RequestError, read_queue, request_id, resolve_request
from videoproc.progress import Progress
from videoproc.storage import Location, exists, locate, read_json, remove, write_json_atomic

DEMO_NOTE = "random-weight demo output of the built-in tiny-random model, not a trained model"
_SETTINGS_THAT_MUST_MATCH = ("engine", "models", "dtype", "fit")


class OptionsChanged(ValueError):
    """The output folder was started with other settings; mixing them would mix videos."""


@dataclass(kw_only=True)
class RunSummary:
    """Counts of one run, and seconds spent per phase (`engine`, `encode`, `record`, ...)."""

    output: str
    total: int = 0
    skipped: int = 0
    completed: int = 0
    failed: int = 0
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def add_time(self, phase: str, seconds: float) -> None:
        self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + seconds

    def line(self) -> str:
        return (f"{self.completed} completed, {self.failed} failed, {self.skipped} already done "
                f"of {self.total} requests in {self.seconds:.1f} s; records: {self.output}/records.parquet")


@dataclass(kw_only=True)
class _Context:
    opts: GenerateOptions
    out: Location
    engines: dict[str, Engine]
    device: str
    dtype: str
    schema: object
    summary: RunSummary
    progress: Progress
    draw_seed: Callable[[], int]


def run(opts: GenerateOptions, *, log: TextIO = sys.stderr, engine_factory=open_engine,
        draw_seed: Callable[[], int] = lambda: secrets.randbelow(2**32)) -> RunSummary:
    """Generate every request of `opts.queue` that `opts.output` does not hold as completed yet."""
    started = time.perf_counter()
    summary = RunSummary(output=locate(opts.output, storage_options=opts.storage_options).url)
    queue = _timed(summary, "queue_read", lambda: read_queue(opts.queue, storage_options=opts.storage_options))
    _check_columns(queue)
    models = resolve_models(opts.models)
    device = resolve_device(opts.engine, opts.device)
    dtype = resolve_dtype(opts.dtype, device)
    out = locate(opts.output, storage_options=opts.storage_options)
    with output_lock(out, log=log):
        _check_settings(out, _settings(opts, models, device, dtype))
        _remove_partials(out)
        todo = _pending(queue, out, summary)
        ctx = _Context(opts=opts, out=out, engines={}, device=device, dtype=dtype,
                       schema=rec.record_schema(queue.passthrough), summary=summary,
                       progress=Progress(total=len(todo), label="requests", mode=opts.progress, stream=log),
                       draw_seed=draw_seed)
        _announce(models, opts, device, dtype, len(todo), summary, log)
        if todo:
            _open_engines(models, ctx, engine_factory)
        _run_queue(queue, todo, models, ctx)
        _timed(summary, "consolidate", lambda: rec.consolidate(out))
    summary.seconds = time.perf_counter() - started
    return summary


def _run_queue(queue: Queue, todo: list[int], models: tuple[ModelRef, ...], ctx: _Context) -> None:
    names = [f.name for f in queue.passthrough]
    try:
        for row in todo:
            started = time.perf_counter()
            request = resolve_request(queue.rows[row], row=row, models=models, limits=ctx.opts.limits,
                                      fit=ctx.opts.fit, draw_seed=ctx.draw_seed, passthrough_names=names)
            ctx.summary.add_time("validate", time.perf_counter() - started)
            record = _rejected_record(request) if isinstance(request, Rejected) else _generate(request, ctx)
            _timed(ctx.summary, "record", lambda: rec.write_record(ctx.out, request.key, record, ctx.schema))
            _count(record, ctx)
    finally:
        ctx.progress.close()
        for engine in ctx.engines.values():
            getattr(engine, "close", lambda: None)()


def _generate(request: Request, ctx: _Context) -> rec.VideoRecord:
    try:
        engine = ctx.engines[request.model.name]
        image = load_reference(request.input_reference) if request.input_reference else None
        started = time.perf_counter()
        frames = engine.generate(_call(request, image), on_step=_step_reporter(request, ctx))
        inference = time.perf_counter() - started
    except RequestError as exc:
        return _failed(request, str(exc), ctx)
    except Exception as exc:  # noqa: BLE001 - an engine failure fails this request; the queue goes on
        return _failed(request, f"{type(exc).__name__}: {exc}", ctx)
    ctx.summary.add_time("engine", inference)
    started = time.perf_counter()
    video = write_video(frames, ctx.out.child("videos", f"{request.key}.mp4"), fps=request.fps,
                        want_b64=request.response_format == "b64_json",
                        comment=DEMO_NOTE if request.model.is_demo else None)
    encode = time.perf_counter() - started
    ctx.summary.add_time("encode", encode)
    count, height, width, _ = frames.shape
    return rec.VideoRecord(
        **_request_fields(request, ctx), status="completed", url=video.url, b64_json=video.b64,
        sha256=video.sha256, bytes=video.bytes, inference_time_s=round(inference, 4),
        encode_time_s=round(encode, 4), width=width, height=height, num_frames=count,
        **_engine_fields(request, ctx),
    )


def _failed(request: Request, error: str, ctx: _Context) -> rec.VideoRecord:
    return rec.VideoRecord(**_request_fields(request, ctx), status="failed", error=error,
                           width=request.width, height=request.height, num_frames=request.num_frames,
                           **_engine_fields(request, ctx))


def _request_fields(request: Request, ctx: _Context) -> dict:
    return dict(
        id=request.id, created=int(time.time()), queue_row=request.row, model=request.model.name,
        prompt=request.prompt, negative_prompt=request.negative_prompt, input_reference=request.input_reference,
        response_format=request.response_format, user=request.user, seed=request.seed,
        seed_drawn=request.seed_drawn, fps=request.fps, num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale, adjustment=request.adjustment, passthrough=request.passthrough,
    )


def _engine_fields(request: Request, ctx: _Context) -> dict:
    engine = ctx.engines.get(request.model.name)
    if engine is None:
        return dict(engine=ctx.opts.engine, device=ctx.device, dtype=ctx.dtype)
    versions = engine.versions()
    versions["videoproc"] = _videoproc_version()
    return dict(engine=engine.name, engine_version=next(iter(versions.values())), device=ctx.device,
                dtype=ctx.dtype, library_versions=" ".join(f"{k}={v}" for k, v in versions.items()))


def _rejected_record(rejected: Rejected) -> rec.VideoRecord:
    raw = rejected.raw
    return rec.VideoRecord(
        id=rejected.id, status="failed", error=rejected.error, created=int(time.time()), queue_row=rejected.row,
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


def _open_engines(models: tuple[ModelRef, ...], ctx: _Context, factory) -> None:
    """Open every model before the first request: a missing package or a bad folder stops the run
    at the start instead of failing each request."""
    started = time.perf_counter()
    for model in models:
        ctx.engines[model.name] = factory(ctx.opts.engine, model=model, device=ctx.device, dtype=ctx.dtype)
    ctx.summary.add_time("engine_open", time.perf_counter() - started)


def _step_reporter(request: Request, ctx: _Context):
    if ctx.progress.mode != "bar":
        return None
    started = time.perf_counter()

    def report(step: int, total: int) -> None:
        text = f"\r  {request.id[:40]}: step {step}/{total} {time.perf_counter() - started:.1f} s"
        ctx.progress.stream.write(text.ljust(110))
        ctx.progress.stream.flush()

    return report


def _count(record: rec.VideoRecord, ctx: _Context) -> None:
    ok = record.status == "completed"
    ctx.summary.completed += ok
    ctx.summary.failed += not ok
    note = f"{record.id[:30]} {record.inference_time_s or 0:.1f} s" if ok else f"{record.id[:30]} failed"
    ctx.progress.advance(ok=ok, note=note)


def _pending(queue: Queue, out: Location, summary: RunSummary) -> list[int]:
    done = _timed(summary, "resume_scan", lambda: rec.completed_ids(out))
    ids = [request_id(raw, row) for row, raw in enumerate(queue.rows)]
    summary.total = len(ids)
    summary.skipped = sum(rid in done for rid in ids)
    return [row for row, rid in enumerate(ids) if rid not in done]


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
    """Save the settings with a new output; refuse to resume one made with other settings."""
    loc = out.child("run.json")
    if not exists(loc):
        write_json_atomic(loc, settings)
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


def _announce(models, opts, device, dtype, todo, summary, log) -> None:
    if opts.progress == "off":
        return
    print(f"generate: {todo} to do, {summary.skipped} already done; engine {opts.engine} on {device} "
          f"({dtype}); models: {', '.join(m.name for m in models)}", file=log, flush=True)
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
