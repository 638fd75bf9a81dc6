"""Records: one row per request, with Dynamo's response fields and what was actually generated.

Storage: each request's record is its own one-row Parquet file, `OUTPUT/records/<key>.parquet`,
written atomically after its MP4 is published, so the file's presence means the request is done and
a request can never have two records. `OUTPUT/records.parquet` is the consolidated table, rewritten
at the end of every run from the record of each row of the current queue: exactly one per row that
has run. A row whose derived id changed (an edited row without an id) leaves its earlier record
file, and the video it names, where they are; they are left out of records.parquet, never deleted.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.common.storage import Location, list_names, read_parquet, write_bytes_atomic

RECORD_FILES_KEY = b"videoproc.record_files"

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
    pa.field("key", pa.string()),  # the stem of the record's and the video's file names
    pa.field("prompt", pa.string()),
    pa.field("negative_prompt", pa.string()),
    pa.field("input_reference", pa.string()),
    pa.field("response_format", pa.string()),
    pa.field("user", pa.string()),
    pa.field("seed", pa.uint64()),  # 0..2**64-1, what torch.Generator.manual_seed takes
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
    key: str
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
    tables = [_read_record(out, name) for name in record_names(out)]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def record_names(out: Location) -> list[str]:
    """The names of the committed record files (`<key>.parquet`)."""
    return [n for n in list_names(records_folder(out)) if n.endswith(".parquet") and not n.startswith(".")]


def completed_keys(out: Location) -> set[str]:
    """The keys whose record says completed."""
    done = set()
    for name in record_names(out):
        loc = records_folder(out).child(name)
        if read_parquet(loc, columns=["status"]).column("status")[0].as_py() == "completed":
            done.add(name[: -len(".parquet")])
    return done


def consolidate(out: Location, *, keys: Sequence[str], schema: pa.Schema) -> int:
    """Rewrite `OUTPUT/records.parquet` with the record of each key, in the order given (the queue's
    rows); returns how many record files belong to no key (earlier ids of edited rows)."""
    names = set(record_names(out))
    tables = [_read_record(out, f"{key}.parquet") for key in keys if f"{key}.parquet" in names]
    table = pa.concat_tables(tables, promote_options="permissive") if tables else schema.empty_table()
    # The report compares this count with the files it sees, to tell whether a run added records since.
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), RECORD_FILES_KEY: str(len(names))})
    write_bytes_atomic(out.child("records.parquet"), _parquet_bytes(table))
    return len(names) - len(tables)


def records_folder(out: Location) -> Location:
    return out.child("records")


def _read_record(out: Location, name: str) -> pa.Table:
    loc = records_folder(out).child(name)
    table = read_parquet(loc)
    return _upgrade(table, key=name[: -len(".parquet")])


def _upgrade(table: pa.Table, *, key: str) -> pa.Table:
    """A record written before records had a `key` and a uint64 seed, in today's form."""
    if "key" not in table.column_names:
        table = table.add_column(table.schema.get_field_index("queue_row") + 1, "key", pa.array([key] * table.num_rows))
    if table.schema.field("seed").type != pa.uint64():
        table = table.set_column(table.schema.get_field_index("seed"), "seed", table.column("seed").cast(pa.uint64()))
    return table


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
