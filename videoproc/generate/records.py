"""Records: one row per request, with Dynamo's response fields and what was actually generated.

Storage: each request's record is its own one-row Parquet file, `OUTPUT/records/<key>.parquet`,
written atomically after its MP4 is published, so the file's presence means the request is done and
a request can never have two records. `OUTPUT/records.parquet` is the consolidated table, rewritten
from those files at the end of every run.
"""

from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass, field, fields
from typing import Iterable, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.storage import Location, list_names, write_bytes_atomic

RECORD_SCHEMA = pa.schema([
    # Dynamo's video response fields.
    pa.field("id", pa.string(), nullable=False),
    pa.field("object", pa.string(), nullable=False),
    pa.field("model", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("progress", pa.int32(), nullable=False),
    pa.field("created", pa.int64(), nullable=False),
    pa.field("url", pa.string()),
    pa.field("b64_json", pa.string()),
    pa.field("error", pa.string()),
    pa.field("inference_time_s", pa.float64()),
    # What was generated, and from what.
    pa.field("queue_row", pa.int64(), nullable=False),
    pa.field("prompt", pa.string()),
    pa.field("negative_prompt", pa.string()),
    pa.field("input_reference", pa.string()),
    pa.field("response_format", pa.string()),
    pa.field("user", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("seed_drawn", pa.bool_()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("num_frames", pa.int32()),
    pa.field("fps", pa.int32()),
    pa.field("num_inference_steps", pa.int32()),
    pa.field("guidance_scale", pa.float64()),
    pa.field("adjustment", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("bytes", pa.int64()),
    pa.field("engine", pa.string()),
    pa.field("engine_version", pa.string()),
    pa.field("library_versions", pa.string()),
    pa.field("device", pa.string()),
    pa.field("dtype", pa.string()),
    pa.field("encode_time_s", pa.float64()),
])
RECORD_FIELDS = frozenset(RECORD_SCHEMA.names)


@dataclass(frozen=True, kw_only=True)
class VideoRecord:
    """One request's outcome. `progress` is 100 when completed and 0 when failed, as in Dynamo."""

    id: str
    status: Literal["completed", "failed"]
    created: int
    queue_row: int
    object: str = "video"
    model: str | None = None
    url: str | None = None
    b64_json: str | None = None
    error: str | None = None
    inference_time_s: float | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    input_reference: str | None = None
    response_format: str | None = None
    user: str | None = None
    seed: int | None = None
    seed_drawn: bool | None = None
    width: int | None = None
    height: int | None = None
    num_frames: int | None = None
    fps: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    adjustment: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    engine: str | None = None
    engine_version: str | None = None
    library_versions: str | None = None
    device: str | None = None
    dtype: str | None = None
    encode_time_s: float | None = None
    passthrough: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in ("completed", "failed"):
            raise ValueError(f"status must be completed or failed (got {self.status!r})")
        if (self.status == "failed") != (self.error is not None):
            raise ValueError(f"a {self.status} record must {'' if self.status == 'failed' else 'not '}carry an error")

    @property
    def progress(self) -> int:
        return 100 if self.status == "completed" else 0

    def to_row(self) -> dict:
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "passthrough"}
        return {**row, "progress": self.progress, **self.passthrough}


def record_schema(passthrough: Iterable[pa.Field] = ()) -> pa.Schema:
    """The record schema followed by the queue's passed-through columns, with their own types."""
    return pa.schema([*RECORD_SCHEMA, *(f.with_nullable(True) for f in passthrough)])


def colliding_columns(passthrough: Iterable[pa.Field]) -> list[str]:
    """Queue columns that would overwrite a record field."""
    return sorted(f.name for f in passthrough if f.name in RECORD_FIELDS)


def write_record(out: Location, key: str, record: VideoRecord, schema: pa.Schema) -> None:
    """Commit one request's record; the last write for a request."""
    table = pa.Table.from_pylist([record.to_row()], schema=schema)
    write_bytes_atomic(records_folder(out).child(f"{key}.parquet"), _parquet_bytes(table))


def read_records(out: Location) -> pa.Table | None:
    """All per-request records, or None when there are none yet."""
    folder = records_folder(out)
    tables = []
    for name in list_names(folder):
        if name.endswith(".parquet") and not name.startswith("."):
            with folder.fs.open(posixpath.join(folder.path, name), "rb") as f:
                tables.append(pq.read_table(f))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def completed_ids(out: Location) -> set[str]:
    table = read_records(out)
    if table is None:
        return set()
    rows = table.select(["id", "status"]).to_pylist()
    return {r["id"] for r in rows if r["status"] == "completed"}


def consolidate(out: Location) -> pa.Table | None:
    """Rewrite `OUTPUT/records.parquet` from the per-request records, ordered by queue row."""
    table = read_records(out)
    if table is None:
        return None
    table = table.sort_by([("queue_row", "ascending"), ("id", "ascending")])
    write_bytes_atomic(out.child("records.parquet"), _parquet_bytes(table))
    return table


def records_folder(out: Location) -> Location:
    return out.child("records")


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
