"""One generation request, start to end, and what running it needs: `run_request` validates a queue
row, generates, publishes the MP4 and then commits its record. The local loop (runner) calls it in
this process; with `--executor ray` each actor of executor_ray calls it on its own GPU.

Order of writes for one request: the MP4 (partial file, then rename or one upload), then its record
file. A run killed between the two leaves a video without a record; the next run redoes the request
and overwrites the video, so a request is recorded at most once and never half.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

from videoproc.common.progress import Progress
from videoproc.common.storage import Location, exists, read_parquet
from videoproc.generate import records as rec
from videoproc.generate.encode import write_video
from videoproc.generate.engines import Engine, EngineCall
from videoproc.generate.models import ModelRef
from videoproc.generate.options import GenerateOptions
from videoproc.generate.reference import load_reference
from videoproc.generate.requests import (
    Rejected,
    Request,
    RequestError,
    record_key,
    request_id,
    resolve_request,
)
from videoproc.source.options import SourceOptions

DEMO_NOTE = "random-weight demo output of the built-in tiny-random model, not a trained model"


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
        progress.note(f"{request.id[:40]}: step {step}/{total} {time.perf_counter() - started:.1f} s")

    return report


def _text(value) -> str | None:
    return value if isinstance(value, str) else (None if value is None else str(value))


def _videoproc_version() -> str:
    try:
        return metadata.version("videoproc")
    except metadata.PackageNotFoundError:
        return "unknown"
