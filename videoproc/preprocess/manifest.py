"""Reading and checking the manifest: a Parquet file, a folder of them, or a glob, at any URL.

A manifest that cannot be planned is refused before any work (ManifestError naming the file, the
problem and the fix); a bad row inside a good manifest is a failed output row later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from videoproc.common import storage
from videoproc.common.errors import ManifestError
from videoproc.preprocess.write import RESERVED_NAMES

# 1 hashed only ids and uris, NUL-joined; 2 hashes every output column with length prefixes.
FINGERPRINT_VERSION = 2
_HASH_PIECE_ROWS = 1 << 16  # rows encoded at a time, which bounds the memory a hash needs


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The rows to process. `table` has `id` and `uri` string columns first, then pass-through."""

    files: tuple[str, ...]
    table: pa.Table = field(repr=False)
    derived_ids: bool

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    @property
    def passthrough_schema(self) -> pa.Schema:
        return pa.schema([self.table.schema.field(n) for n in self.table.schema.names[2:]])

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the manifest's content for resume: the row count, the column order, and
        the type and a hash of the values of every column that reaches the output (id, uri and each
        pass-through column), so that an edited caption is caught as surely as an edited uri."""
        return {
            "fingerprint_version": FINGERPRINT_VERSION,
            "rows": self.num_rows,
            "column_order": self.table.schema.names,
            "columns": {
                f.name: {"type": str(f.type), "sha256": column_hash(self.table.column(f.name))}
                for f in self.table.schema
            },
        }

    def passthrough_rows(self, start: int, stop: int) -> list[dict[str, Any]]:
        return self.table.slice(start, stop - start).drop_columns(["id", "uri"]).to_pylist()


def derived_id(position: int) -> str:
    """The stable id of a row without one: its zero-padded position in the manifest."""
    return f"row-{position:09d}"


def read_manifest(
    url: str, *, uri_column: str = "uri", id_column: str = "id", storage_options: dict | None = None
) -> Manifest:
    files = _resolve_files(url, storage_options or {})
    table = _read_tables(files, url, storage_options or {})
    return _normalise(table, files=files, url=url, uri_column=uri_column, id_column=id_column)


def _resolve_files(url: str, storage_options: dict) -> tuple[str, ...]:
    loc = storage.locate(url, storage_options=storage_options)
    fs = loc.fs
    try:
        if any(ch in loc.path for ch in "*?["):
            paths = sorted(fs.glob(loc.path))
        elif fs.isdir(loc.path):
            paths = sorted(p for p in fs.find(loc.path) if p.endswith(".parquet"))
        elif fs.exists(loc.path):
            paths = [loc.path]
        else:
            paths = []
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {url}: {exc}; check the path and credentials") from exc
    if not paths:
        raise ManifestError(
            f"manifest {url} matches no Parquet file; give a .parquet file, a folder of them, or a glob"
        )
    return tuple(fs.unstrip_protocol(p) if not loc.is_local else p for p in paths)


def _read_tables(files: tuple[str, ...], url: str, storage_options: dict) -> pa.Table:
    tables = []
    for path in files:
        loc = storage.locate(path, storage_options=storage_options)
        try:
            tables.append(storage.read_parquet(loc))
        except (OSError, pa.ArrowInvalid) as exc:
            raise ManifestError(
                f"cannot read manifest file {path}: {exc}; the manifest must be Parquet"
            ) from exc
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ManifestError(f"manifest files under {url} have incompatible columns: {exc}") from exc


def _normalise(table: pa.Table, *, files, url: str, uri_column: str, id_column: str) -> Manifest:
    names = table.schema.names
    if uri_column not in names:
        raise ManifestError(
            f"manifest {url} has no column {uri_column!r} (columns: {', '.join(names)}); add it or "
            "pass --uri-column NAME"
        )
    uris = _string_column(table, uri_column, url)
    derived = id_column not in names
    ids = (pa.array([derived_id(i) for i in range(table.num_rows)], pa.string()) if derived
           else _string_column(table, id_column, url))
    _check_unique(ids, url)
    rest = [n for n in names if n not in (uri_column, id_column)]
    _check_reserved(rest, url)
    columns = [ids, uris] + [table.column(n) for n in rest]
    return Manifest(files=files, table=pa.table(columns, names=["id", "uri", *rest]), derived_ids=derived)


def _string_column(table: pa.Table, name: str, url: str) -> pa.ChunkedArray:
    column = table.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise ManifestError(f"manifest {url}: column {name!r} must hold strings (got {column.type})")
    if column.null_count:
        first = column.is_null().to_pylist().index(True)
        raise ManifestError(
            f"manifest {url}: column {name!r} has {column.null_count} empty value(s), the first at "
            f"row {first}; every row needs one"
        )
    return column.cast(pa.string())


def _check_unique(ids: pa.ChunkedArray, url: str) -> None:
    counts = pc.value_counts(ids)
    dupes = [c["values"] for c in counts.to_pylist() if c["counts"] > 1]
    if dupes:
        shown = ", ".join(repr(d) for d in dupes[:5])
        raise ManifestError(
            f"manifest {url} has {len(dupes)} duplicate id(s): {shown}; ids must be unique (drop "
            "the id column to use row positions)"
        )


def _check_reserved(columns: list[str], url: str) -> None:
    clash = [c for c in columns if c in RESERVED_NAMES]
    if clash:
        raise ManifestError(
            f"manifest {url} has column(s) {', '.join(clash)} that the output reserves for its own "
            "use; rename them in the manifest"
        )


def column_hash(column: pa.ChunkedArray) -> str:
    """SHA-256 of a column's type and values, the same however the column is chunked.

    Each value is encoded on its own, so two columns hash alike only when their values are alike:
    a stream of sizes (8 bytes each, -1 for null, so a null differs from an empty string) and a
    stream of the value bytes those sizes split, hashed separately and then together.
    """
    sizes, data = hashlib.sha256(), hashlib.sha256()
    for chunk in column.chunks:
        for start in range(0, len(chunk), _HASH_PIECE_ROWS):
            piece_sizes, piece_data = _encode(chunk.slice(start, _HASH_PIECE_ROWS))
            sizes.update(piece_sizes)
            data.update(piece_data)
    header = str(column.type).encode()
    return hashlib.sha256(_framed(header) + sizes.digest() + data.digest()).hexdigest()


def _encode(array: pa.Array) -> tuple[bytes, bytes]:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if any(test(kind) for test in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                                   pa.types.is_large_binary)):
        return _encode_binary(array.cast(pa.large_binary()))
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return _encode_numbers(array)
    return _encode_values(array.to_pylist())


def _encode_binary(array: pa.LargeBinaryArray) -> tuple[bytes, bytes]:
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.frombuffer(array.buffers()[1], dtype="<i8")[array.offset : array.offset + len(array) + 1]
    lengths = np.diff(offsets)
    sizes = np.where(valid, lengths, -1).astype("<i8").tobytes()
    buffer = array.buffers()[2]
    if buffer is None or len(array) == 0:
        return sizes, b""
    data = np.frombuffer(buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    return sizes, (data if array.null_count == 0 else data[np.repeat(valid, lengths)]).tobytes()


def _encode_numbers(array: pa.Array) -> tuple[bytes, bytes]:
    """Fixed-width values; a null's slot holds zero, and its size -1 marks it."""
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    width = max(1, array.type.bit_width // 8)
    values = array.fill_null(False if pa.types.is_boolean(array.type) else 0).to_numpy(zero_copy_only=False)
    sizes = np.where(valid, width, -1).astype("<i8").tobytes()
    return sizes, values.astype(values.dtype.newbyteorder("<")).tobytes()


def _encode_values(values: list[Any]) -> tuple[bytes, bytes]:
    """Any other type (lists, structs, dates, decimals...) value by value from its Python form."""
    encoded = [None if v is None else _value_bytes(v) for v in values]
    sizes = np.array([-1 if e is None else len(e) for e in encoded], dtype="<i8").tobytes()
    return sizes, b"".join(e for e in encoded if e is not None)


def _value_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, str)):
        return value.encode() if isinstance(value, str) else value
    if isinstance(value, (list, tuple)):
        return b"L" + len(value).to_bytes(8, "little") + b"".join(_framed_value(v) for v in value)
    if isinstance(value, dict):
        items = (_framed_value(k) + _framed_value(v) for k, v in value.items())
        return b"D" + len(value).to_bytes(8, "little") + b"".join(items)
    return repr(value).encode()  # dates, times, decimals, floats inside lists: repr is exact


def _framed_value(value: Any) -> bytes:
    return b"N" if value is None else b"V" + _framed(_value_bytes(value))


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data
