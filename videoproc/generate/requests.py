"""The queue: a Parquet file of Dynamo video requests, validated row by row.

A row that breaks a rule becomes a `Rejected` carrying the message; the queue goes on. Only problems
with the queue as a whole (unreadable file, no `prompt` column, duplicate ids or keys, a column that
would overwrite a record field) raise `QueueError` before any work starts.

Every row has an id (its own, or one derived from its position and content) and a key, the stem of
its record and video file names: the id itself when it is a safe file name, else `id-` and the
first 16 hex digits of the id's SHA-256. The record keeps both.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from videoproc.common.errors import OptionsError
from videoproc.common.storage import Location, locate, read_parquet
from videoproc.generate.models import ModelRef, ModelSpec
from videoproc.generate.options import Fit, Limits

REQUEST_FIELDS = (
    "id", "prompt", "model", "negative_prompt", "size", "seconds", "fps", "num_frames",
    "num_inference_steps", "guidance_scale", "seed", "input_reference", "response_format", "user",
)
RESPONSE_FORMATS = ("url", "b64_json")
DEFAULT_FPS = 24
DEFAULT_SECONDS = 4.0
SEED_LIMIT = 2**64  # seeds are stored as uint64, the range torch.Generator.manual_seed takes
# Every whole number below 2**53 is a float of its own; 2**53 is also the float of 2**53 + 1.
_EXACT_FLOAT_LIMIT = 2**53
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


class QueueError(OptionsError):
    """The queue as a whole cannot be run: refused before any work."""


class RequestError(ValueError):
    """One request breaks a rule; it becomes a failed record."""


@dataclass(frozen=True, kw_only=True)
class Queue:
    """The rows of the queue as dicts, and the Arrow fields of the columns passed through to records."""

    url: str
    rows: list[dict]
    passthrough: tuple[pa.Field, ...]


@dataclass(frozen=True, kw_only=True)
class Request:
    """A valid request with every default filled in: what will actually be generated.

    `adjustment` says what `--fit round` changed (None when nothing was); `seed_drawn` is True when
    the queue gave no seed and one was drawn for this run.
    """

    row: int
    id: str
    prompt: str
    negative_prompt: str | None
    model: ModelRef
    width: int
    height: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    seed_drawn: bool
    input_reference: str | None
    response_format: str
    user: str | None
    adjustment: str | None
    passthrough: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return key_for_id(self.id)


@dataclass(frozen=True, kw_only=True)
class Rejected:
    """A row that failed validation. `key` names its record file, as for a `Request`."""

    row: int
    id: str
    key: str
    error: str
    raw: dict
    passthrough: dict = field(default_factory=dict)


def read_queue(url: str, *, storage_options: dict | None = None) -> Queue:
    """Read a Parquet queue from a local path or fsspec URL and check it as a whole."""
    loc = _locate_queue(url, storage_options)
    try:
        table = read_parquet(loc)
    except FileNotFoundError:
        raise QueueError(f"queue {url!r} does not exist; pass a Parquet file of requests") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise QueueError(f"queue {url!r} is not a readable Parquet file ({exc}); write it with pyarrow") from exc
    if "prompt" not in table.column_names:
        raise QueueError(f"queue {url!r} has no 'prompt' column (columns: {table.column_names}); add one")
    passthrough = tuple(f for f in table.schema if f.name not in REQUEST_FIELDS)
    queue = Queue(url=loc.url, rows=table.to_pylist(), passthrough=passthrough)
    _check_unique_ids(queue)
    return queue


def _locate_queue(url: str, storage_options: dict | None) -> Location:
    try:
        return locate(url, storage_options=storage_options)
    except (ValueError, ImportError) as exc:  # an unknown scheme, or one whose fsspec package is missing
        raise QueueError(f"queue {url!r} is not usable: {exc}; pass a local Parquet file or an fsspec URL") from None


def request_id(raw: dict, row: int) -> str:
    """The id of a row: its own, or `req-NNNNNN-<hash>` from its position and content.

    The hash covers every column but `id`, so an edited row gets a new id and a re-run does not
    mistake it for the request that used to sit at that position.
    """
    given = _missing_to_none(raw.get("id"))
    if given is not None:
        return str(given)
    content = json.dumps({k: v for k, v in raw.items() if k != "id"}, sort_keys=True, default=str)
    return f"req-{row:06d}-{hashlib.sha256(content.encode()).hexdigest()[:8]}"


def is_safe_id(value: str) -> bool:
    return bool(_SAFE_ID.fullmatch(value)) and ".." not in value


def key_for_id(rid: str) -> str:
    """The stem of a request's file names: the id when it is safe as one, else `id-<16 hex digits
    of its SHA-256>`, so that path-like, long or non-ASCII ids name no path of their own."""
    return rid if is_safe_id(rid) else f"id-{hashlib.sha256(rid.encode()).hexdigest()[:16]}"


def resolve_request(
    raw: dict,
    *,
    row: int,
    models: Sequence[ModelRef],
    limits: Limits,
    fit: Fit,
    draw_seed: Callable[[], int],
    passthrough_names: Sequence[str] = (),
) -> Request | Rejected:
    """Validate one queue row into a `Request`, or a `Rejected` naming the rule it broke."""
    rid = request_id(raw, row)
    passthrough = {name: raw.get(name) for name in passthrough_names}
    try:
        return _resolve(raw, rid=rid, row=row, models=models, limits=limits, fit=fit,
                        draw_seed=draw_seed, passthrough=passthrough)
    except RequestError as exc:
        return Rejected(row=row, id=rid, key=record_key(raw, row), error=str(exc), raw=raw, passthrough=passthrough)


def record_key(raw: dict, row: int) -> str:
    """The name of a queue row's record file (see `key_for_id`)."""
    return key_for_id(request_id(raw, row))


def _resolve(raw, *, rid, row, models, limits, fit, draw_seed, passthrough) -> Request:
    _check_id(rid)
    prompt = _text(raw, "prompt", required=True)
    reference = _text(raw, "input_reference")
    model = pick_model(models, requested=_text(raw, "model"), task="i2v" if reference else "t2v")
    spec = model.spec
    width, height = _size(raw, spec, limits)
    num_frames, fps = _frames(raw, spec, limits)
    (width, height), size_note = _fit_size(width, height, spec, fit)
    num_frames, frames_note = _fit_frames(num_frames, spec, fit)
    seed = _seed(raw)
    return Request(
        row=row, id=rid, prompt=prompt, negative_prompt=_text(raw, "negative_prompt"), model=model,
        width=width, height=height, num_frames=num_frames, fps=fps,
        num_inference_steps=_integer(raw, "num_inference_steps", minimum=1, maximum=1000) or spec.default_steps,
        guidance_scale=_guidance(raw, spec), seed=draw_seed() if seed is None else seed, seed_drawn=seed is None,
        input_reference=reference, response_format=_response_format(raw), user=_text(raw, "user"),
        adjustment="; ".join(n for n in (size_note, frames_note) if n) or None, passthrough=passthrough,
    )


def pick_model(models: Sequence[ModelRef], *, requested: str | None, task: str) -> ModelRef:
    """The model a request runs on: the one it names, else the first that serves its task."""
    names = ", ".join(m.name for m in models)
    candidates = [m for m in models if requested is None or m.name == requested]
    if not candidates:
        raise RequestError(f"model {requested!r} is not loaded in this run (loaded: {names}); "
                           "leave the model column empty or add --model for it")
    for model in candidates:
        if task in model.tasks:
            return model
    kind = "image-to-video (input_reference given)" if task == "i2v" else "text-to-video (no input_reference)"
    raise RequestError(f"request is {kind} but no loaded model serves that (loaded: {names}); "
                       f"add --model for a {'WanImageToVideoPipeline' if task == 'i2v' else 'WanPipeline'} folder")


def _check_id(rid: str) -> None:
    if "\x00" in rid:
        raise RequestError(f"id {rid!r} is not allowed: ids must contain no NUL character; "
                           "fix the queue's id column or leave the id empty")


def _seed(raw: dict) -> int | None:
    """An exact whole number 0..2**64-1. A float is taken only when whole and below 2**53, where it
    cannot be the rounding of another whole number (pandas writes an integer column with gaps as
    floats)."""
    value = _missing_to_none(raw.get("seed"))
    if value is None:
        return None
    whole_float = isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOAT_LIMIT
    whole_decimal = isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value()
    if whole_float or whole_decimal:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise RequestError(
            f"seed {raw.get('seed')!r} is not an exact whole number 0..{SEED_LIMIT - 1}: seeds must be "
            f"integers (floats only when whole and below 2**53, never text); store the seed column as integers"
        )
    return value


def _size(raw: dict, spec: ModelSpec, limits: Limits) -> tuple[int, int]:
    value = _missing_to_none(raw.get("size"))
    if value is None:
        return spec.default_width, spec.default_height
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise RequestError(f"size {value!r} is not WxH with positive integers; write it like '832x480'")
    width, height = int(match[1]), int(match[2])
    if width > limits.max_width or height > limits.max_height:
        raise RequestError(f"size {width}x{height} exceeds the limit {limits.max_width}x{limits.max_height} "
                           "(--max-width/--max-height); ask for a smaller size or raise the limits")
    return width, height


def _frames(raw: dict, spec: ModelSpec, limits: Limits) -> tuple[int, int]:
    """Frame count by Dynamo's precedence: num_frames > seconds x fps > the model's default."""
    num_frames = _integer(raw, "num_frames", minimum=1)
    fps = _integer(raw, "fps", minimum=1, maximum=240)
    seconds = _positive(raw, "seconds")
    out_fps = fps or DEFAULT_FPS
    if num_frames is None:
        if seconds is None and fps is None:
            num_frames = spec.default_num_frames
        else:
            num_frames = max(1, round((seconds or DEFAULT_SECONDS) * out_fps))
    if num_frames > limits.max_frames:
        raise RequestError(f"request asks for {num_frames} frames, over the limit of {limits.max_frames} "
                           "(--max-frames); ask for fewer seconds or frames, or raise the limit")
    return num_frames, out_fps


def _fit_size(width: int, height: int, spec: ModelSpec, fit: Fit) -> tuple[tuple[int, int], str | None]:
    m = spec.size_multiple
    if width % m == 0 and height % m == 0:
        return (width, height), None
    fitted = (max(m, round(width / m) * m), max(m, round(height / m) * m))
    if fit == "reject":
        raise RequestError(f"size {width}x{height} does not suit {spec.family}: width and height must be "
                           f"multiples of {m}; ask for {fitted[0]}x{fitted[1]} or run with --fit round")
    return fitted, f"size {width}x{height} rounded to {fitted[0]}x{fitted[1]} (multiples of {m})"


def _fit_frames(num_frames: int, spec: ModelSpec, fit: Fit) -> tuple[int, str | None]:
    step = spec.frame_step
    if (num_frames - 1) % step == 0:
        return num_frames, None
    fitted = step * math.floor((num_frames - 1) / step + 0.5) + 1  # nearest step*k+1, ties up
    if fit == "reject":
        raise RequestError(f"{num_frames} frames does not suit {spec.family}: frame counts must be "
                           f"{step}k+1; ask for {fitted} or run with --fit round")
    return fitted, f"{num_frames} frames rounded to {fitted} ({step}k+1)"


def _guidance(raw: dict, spec: ModelSpec) -> float:
    value = _number(raw, "guidance_scale")
    if value is None:
        return spec.default_guidance
    if value < 0 or value > 100:
        raise RequestError(f"guidance_scale {value!r} is outside 0..100; use e.g. 5.0")
    return value


def _response_format(raw: dict) -> str:
    value = _missing_to_none(raw.get("response_format")) or "url"
    if value not in RESPONSE_FORMATS:
        raise RequestError(f"response_format {value!r} is not one of {', '.join(RESPONSE_FORMATS)}; "
                           "use url (file only) or b64_json (file and base64 in the record)")
    return value


def _text(raw: dict, name: str, *, required: bool = False) -> str | None:
    value = _missing_to_none(raw.get(name))
    if value is not None and not isinstance(value, str):
        raise RequestError(f"{name} {value!r} must be text (got {type(value).__name__}); store it as a string")
    if required and (value is None or not value.strip()):
        raise RequestError(f"{name} is missing or empty (got {value!r}); every request needs a {name}")
    return value


def _integer(raw: dict, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    value = _number(raw, name)
    if value is None:
        return None
    if value != int(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise RequestError(f"{name} {raw.get(name)!r} must be a whole number {bound}; fix the {name} column")
    return int(value)


def _positive(raw: dict, name: str) -> float | None:
    value = _number(raw, name)
    if value is not None and value <= 0:
        raise RequestError(f"{name} {raw.get(name)!r} must be greater than 0; fix the {name} column")
    return value


def _number(raw: dict, name: str) -> float | None:
    """A numeric field; numeric strings are accepted because queues in the video API request format
    store `seconds` as text."""
    value = _missing_to_none(raw.get(name))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RequestError(f"{name} {value!r} must be a number; fix the {name} column")
    try:
        number = float(value) if not isinstance(value, int) else value
    except ValueError:
        raise RequestError(f"{name} {value!r} must be a number; fix the {name} column") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise RequestError(f"{name} {value!r} must be a finite number; fix the {name} column")
    return number


def _missing_to_none(value: Any) -> Any:
    # pandas writes missing numbers as NaN and missing text as None; both mean "not given".
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _check_unique_ids(queue: Queue) -> None:
    seen: dict[str, int] = {}
    keys: dict[str, int] = {}
    for row, raw in enumerate(queue.rows):
        rid = request_id(raw, row)
        if rid in seen:
            raise QueueError(f"id {rid!r} appears at rows {seen[rid]} and {row} of {queue.url}; "
                             "ids must be unique, so rename one or leave both empty")
        seen[rid] = row
        _check_unique_key(queue, rid, row, keys)


def _check_unique_key(queue: Queue, rid: str, row: int, keys: dict[str, int]) -> None:
    # A given id may spell the hashed key of another, e.g. 'id-0123456789abcdef'.
    key = key_for_id(rid)
    if key in keys:
        other = request_id(queue.rows[keys[key]], keys[key])
        raise QueueError(f"ids {other!r} (row {keys[key]}) and {rid!r} (row {row}) of {queue.url} both name the "
                         f"file {key!r}; rename one of them")
    keys[key] = row
