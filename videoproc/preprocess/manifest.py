"""Reading and checking the manifest: a Parquet file, a folder of them, or a glob, at any URL.

The driver never holds the manifest. read_manifest builds a ManifestIndex from Parquet metadata
alone (each file's row count and the row counts of its row groups, and the schema), then makes one
streamed pass over the rows, a row group at a time, for what needs every value:

- the resume fingerprint (version 2): the same length-prefixed SHA-256 of every output column as
  hashing the whole table at once, updated piece by piece. Cost: one read of every column, CPU
  linear in the manifest's bytes, memory of one row group.
- the id-uniqueness check: ids are spilled to local temporary files (under TMPDIR),
  hash-partitioned by id (one partition per ~256k rows, at most 256), and each partition is then
  counted on its own. Cost: the ids written once and read once on local disk (about their size
  plus 8 bytes each), about 0.15 s per million rows on one core, and memory of the largest
  partition (~256k ids; 10M rows take 39 partitions, and past 64M rows a partition holds a 256th
  of them). Derived ids are unique by construction and skip it.
- empty ids and uris, reported with the position of the first.

A shard's rows, pass-through columns included, are read by whoever processes the shard
(ManifestIndex.rows_for reads only the row groups covering it). Memory is bounded by a row group
(plus one piece of 64k rows while hashing), not by the manifest; a column whose values are large
(a dictionary-encoded column of 1 MiB data: URIs, say) decodes a row group's worth at a time, so
keep such manifests' row groups small.

A manifest that cannot be planned is refused before any work (ManifestError naming the file, the
problem and the fix); a bad row inside a good manifest is a failed output row later.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from videoproc.common import storage
from videoproc.common.errors import ManifestError
from videoproc.preprocess.write import RESERVED_NAMES

# 1 hashed only ids and uris, NUL-joined; 2 hashes every output column with length prefixes.
FINGERPRINT_VERSION = 2
_HASH_PIECE_ROWS = 1 << 16  # rows read and encoded at a time, which bounds the memory a pass needs
_IDS_PER_PARTITION = 1 << 18  # ids per spill partition of the uniqueness check (its memory bound)
_MAX_PARTITIONS = 256  # open spill files at once; a partition number fits a byte
_SHOWN_DUPLICATES = 5


@dataclass(frozen=True, kw_only=True)
class ManifestIndex:
    """The manifest as a plan: where each row lives, never the rows themselves.

    files: the Parquet files in order; file_rows: rows per file; group_rows: rows per row group of
    each file. schema: the output columns, `id` and `uri` (strings) first, then pass-through.
    source_schema: the files' columns unified. Small enough to ship with every shard's work.
    """

    files: tuple[str, ...]
    file_rows: tuple[int, ...]
    group_rows: tuple[tuple[int, ...], ...]
    schema: pa.Schema = field(repr=False)
    source_schema: pa.Schema = field(repr=False)
    uri_column: str
    id_column: str
    derived_ids: bool
    storage_options: dict = field(default_factory=dict, repr=False, compare=False)
    fingerprint_value: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_rows(self) -> int:
        return sum(self.file_rows)

    @property
    def passthrough_schema(self) -> pa.Schema:
        return pa.schema([self.schema.field(n) for n in self.schema.names[2:]])

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the manifest's content for resume: the row count, the column order, and
        the type and a hash of the values of every column that reaches the output (id, uri and each
        pass-through column), so that an edited caption is caught as surely as an edited uri.
        Computed once, streamed, by read_manifest."""
        return self.fingerprint_value

    def rows_for(self, start: int, stop: int, *, cache: GroupCache | None = None) -> pa.Table:
        """Output columns of manifest rows [start, stop), reading only the row groups that hold them."""
        pieces = []
        file_starts = [0, *accumulate(self.file_rows)]
        k = max(0, bisect.bisect_right(file_starts, start) - 1)
        while k < len(self.files) and file_starts[k] < stop:
            lo, hi = max(start, file_starts[k]) - file_starts[k], min(stop, file_starts[k + 1]) - file_starts[k]
            if hi > lo:
                pieces.append(self._file_rows(k, lo, hi, first=file_starts[k], cache=cache))
            k += 1
        if not pieces:
            return self.schema.empty_table()
        return pa.concat_tables(pieces)

    def passthrough_rows(self, start: int, stop: int) -> list[dict[str, Any]]:
        return self.rows_for(start, stop).drop_columns(["id", "uri"]).to_pylist()

    def _file_rows(self, k: int, lo: int, hi: int, *, first: int, cache: GroupCache | None) -> pa.Table:
        group_starts = [0, *accumulate(self.group_rows[k])]
        g0 = bisect.bisect_right(group_starts, lo) - 1
        g1 = bisect.bisect_left(group_starts, hi)
        groups = list(range(g0, g1))
        key = (k, tuple(groups))
        table = cache.get(key) if cache else None
        if table is None:
            with _open(self.files[k], self.storage_options) as pf:
                table = pf.read_row_groups(groups, columns=_present(pf, self.source_schema))
            if cache is not None:
                cache.put(key, table)
        table = table.slice(lo - group_starts[g0], hi - lo)
        return self._conform(table, first=first + lo)

    def _conform(self, table: pa.Table, *, first: int) -> pa.Table:
        """A file's rows as output columns: ids and uris as strings (ids derived from positions
        when the manifest has none), columns a file lacks filled with nulls, unified types."""
        n = table.num_rows
        ids = (derived_ids(first, first + n) if self.derived_ids
               else table.column(self.id_column).cast(pa.string()))
        columns = [ids, table.column(self.uri_column).cast(pa.string())]
        for f in self.passthrough_schema:
            columns.append(table.column(f.name).cast(f.type) if f.name in table.column_names
                           else pa.nulls(n, f.type))
        return pa.table(columns, schema=self.schema)

    def iter_pieces(self) -> Iterator[tuple[int, pa.Table]]:
        """(first position, output columns) of every piece of the manifest, in order, at most
        _HASH_PIECE_ROWS rows each: the streamed pass. Read a row group at a time: iter_batches
        prebuffers ahead and held three times the memory on a 10M-row file."""
        position = 0
        for path in self.files:
            with _open(path, self.storage_options) as pf:
                columns = _present(pf, self.source_schema)
                for group in range(pf.metadata.num_row_groups):
                    table = pf.read_row_group(group, columns=columns)
                    for start in range(0, table.num_rows, _HASH_PIECE_ROWS):
                        piece = table.slice(start, _HASH_PIECE_ROWS)
                        yield position, self._conform(piece, first=position)
                        position += piece.num_rows


class GroupCache:
    """The last row groups read, so that consecutive shards of one row group read it once."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._table: pa.Table | None = None

    def get(self, key: tuple) -> pa.Table | None:
        return self._table if key == self._key else None

    def put(self, key: tuple, table: pa.Table) -> None:
        self._key, self._table = key, table


def _present(pf: pq.ParquetFile, schema: pa.Schema) -> list[str]:
    names = set(pf.schema_arrow.names)
    return [n for n in schema.names if n in names]


class _open:
    """A ParquetFile over an fsspec file, closed with it (never pq.read_table on a file object:
    see storage.read_parquet)."""

    def __init__(self, path: str, storage_options: dict) -> None:
        self.loc = storage.locate(path, storage_options=storage_options)

    def __enter__(self) -> pq.ParquetFile:
        self._f = self.loc.fs.open(self.loc.path, "rb")
        return pq.ParquetFile(self._f)

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def derived_id(position: int) -> str:
    """The stable id of a row without one: its zero-padded position in the manifest."""
    return f"row-{position:09d}"


def derived_ids(start: int, stop: int) -> pa.Array:
    """derived_id of every position in [start, stop), built without a Python string per row."""
    n = stop - start
    if n <= 0 or stop > 10**9:
        return pa.array([derived_id(i) for i in range(start, stop)], pa.string())
    positions = np.arange(start, stop, dtype=np.int64)
    digits = (positions[:, None] // 10 ** np.arange(8, -1, -1, dtype=np.int64)) % 10 + ord("0")
    data = np.empty((n, 13), dtype=np.uint8)
    data[:, :4] = np.frombuffer(b"row-", dtype=np.uint8)
    data[:, 4:] = digits
    offsets = np.arange(0, 13 * n + 1, 13, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes()))


def read_manifest(
    url: str, *, uri_column: str = "uri", id_column: str = "id", storage_options: dict | None = None
) -> ManifestIndex:
    """Index the manifest from its metadata, then check and fingerprint it in one streamed pass."""
    options = storage_options or {}
    files = _resolve_files(url, options)
    file_rows, group_rows, source = _read_metadata(files, url, options)
    index = _index(files, file_rows, group_rows, source, url=url, uri_column=uri_column, id_column=id_column,
                   storage_options=options)
    return dataclasses.replace(index, fingerprint_value=_scan(index, url))


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


def _read_metadata(files: tuple[str, ...], url: str, storage_options: dict
                   ) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...], pa.Schema]:
    file_rows, group_rows, schemas = [], [], []
    for path in files:
        try:
            with _open(path, storage_options) as pf:
                meta = pf.metadata
                schemas.append(pf.schema_arrow)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ManifestError(
                f"cannot read manifest file {path}: {exc}; the manifest must be Parquet"
            ) from exc
        file_rows.append(meta.num_rows)
        group_rows.append(tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)))
    try:
        # The same rule as concatenating the tables: a column missing from a file is null there.
        source = pa.unify_schemas(schemas, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ManifestError(f"manifest files under {url} have incompatible columns: {exc}") from exc
    return tuple(file_rows), tuple(group_rows), source


def _index(files, file_rows, group_rows, source: pa.Schema, *, url: str, uri_column: str, id_column: str,
           storage_options: dict) -> ManifestIndex:
    names = source.names
    if uri_column not in names:
        raise ManifestError(
            f"manifest {url} has no column {uri_column!r} (columns: {', '.join(names)}); add it or "
            "pass --uri-column NAME"
        )
    _check_string(source, uri_column, url)
    derived = id_column not in names
    if not derived:
        _check_string(source, id_column, url)
    rest = [n for n in names if n not in (uri_column, id_column)]
    _check_reserved(rest, url)
    schema = pa.schema([pa.field("id", pa.string()), pa.field("uri", pa.string()),
                        *(source.field(n) for n in rest)])
    return ManifestIndex(files=files, file_rows=file_rows, group_rows=group_rows, schema=schema,
                         source_schema=source, uri_column=uri_column, id_column=id_column,
                         derived_ids=derived, storage_options=storage_options)


def _check_string(schema: pa.Schema, name: str, url: str) -> None:
    kind = schema.field(name).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ManifestError(f"manifest {url}: column {name!r} must hold strings (got {kind})")


def _check_reserved(columns: list[str], url: str) -> None:
    clash = [c for c in columns if c in RESERVED_NAMES]
    if clash:
        raise ManifestError(
            f"manifest {url} has column(s) {', '.join(clash)} that the output reserves for its own "
            "use; rename them in the manifest"
        )


def _scan(index: ManifestIndex, url: str) -> dict[str, Any]:
    """The streamed pass: empty ids and uris, duplicate ids, and the fingerprint. A piece is hashed
    on a second thread while the next is read and spilled (hashlib and Parquet decoding release
    the GIL), one piece in flight at most, so memory stays at two pieces."""
    hashes = {f.name: _ColumnHash(f.type) for f in index.schema}
    empties = {"id": _Empty(), "uri": _Empty()}
    with tempfile.TemporaryDirectory(prefix="videoproc-ids-") as folder, ThreadPoolExecutor(1) as hasher:
        spill = None if index.derived_ids else _IdSpill(folder, rows=index.num_rows)
        hashing = None
        try:
            for first, piece in index.iter_pieces():
                if hashing is not None:
                    hashing.result()
                hashing = hasher.submit(_hash_piece, hashes, piece)
                for name, empty in empties.items():
                    empty.update(piece.column(name), first)
                if spill is not None:
                    spill.add(piece.column("id"), first)
            if hashing is not None:
                hashing.result()
        finally:
            if spill is not None:
                spill.close()
        for name in ("uri", "id"):
            empties[name].check(index.uri_column if name == "uri" else index.id_column, url)
        if spill is not None:
            spill.check(url)
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        "rows": index.num_rows,
        "column_order": index.schema.names,
        "columns": {f.name: {"type": str(f.type), "sha256": hashes[f.name].hexdigest()} for f in index.schema},
    }


def _hash_piece(hashes: dict[str, _ColumnHash], piece: pa.Table) -> None:
    for name, column in zip(piece.column_names, piece.columns, strict=True):
        hashes[name].update(column)


@dataclass
class _Empty:
    """Null ids or uris: how many, and the position of the first."""

    count: int = 0
    first: int | None = None

    def update(self, column: pa.ChunkedArray, start: int) -> None:
        if column.null_count:
            if self.first is None:
                self.first = start + column.is_null().to_pylist().index(True)
            self.count += column.null_count

    def check(self, name: str, url: str) -> None:
        if self.count:
            raise ManifestError(
                f"manifest {url}: column {name!r} has {self.count} empty value(s), the first at "
                f"row {self.first}; every row needs one"
            )


class _IdSpill:
    """The uniqueness check in bounded memory: ids (with their positions) go to partition files by
    a hash of the id, so equal ids meet in one partition, which is then counted alone."""

    def __init__(self, folder: str, *, rows: int) -> None:
        self.parts = max(1, min(_MAX_PARTITIONS, -(-rows // _IDS_PER_PARTITION)))
        self.paths = [os.path.join(folder, f"ids-{p:03d}.arrow") for p in range(self.parts)]
        self.schema = pa.schema([("id", pa.string()), ("row", pa.int64())])
        self.writers = [pa.ipc.new_stream(p, self.schema) for p in self.paths]

    def add(self, ids: pa.ChunkedArray, start: int) -> None:
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        rows = pa.array(np.arange(start, start + len(ids), dtype=np.int64))
        if self.parts == 1:
            self.writers[0].write_table(pa.table([ids, rows], schema=self.schema))
            return
        part = _partition(ids, self.parts)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.parts + 1))
        table = pa.table([ids, rows], schema=self.schema).take(pa.array(order))
        for p in range(self.parts):
            if bounds[p + 1] > bounds[p]:
                self.writers[p].write_table(table.slice(bounds[p], bounds[p + 1] - bounds[p]))

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    def check(self, url: str) -> None:
        total, shown = 0, []
        for path in self.paths:
            with pa.memory_map(path) as source:
                table = pa.ipc.open_stream(source).read_all()
            counts = pc.value_counts(table.column("id"))
            dupes = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
            total += len(dupes)
            # Each partition's duplicates in order of first appearance; the first few of each
            # are enough to show the first few of the manifest.
            for value in dupes[:_SHOWN_DUPLICATES].to_pylist():
                first = table.column("row")[pc.index(table.column("id"), value).as_py()].as_py()
                shown.append((first, value))
        if total:
            listed = ", ".join(repr(v) for _, v in sorted(shown)[:_SHOWN_DUPLICATES])
            raise ManifestError(
                f"manifest {url} has {total} duplicate id(s): {listed}; ids must be unique (drop "
                "the id column to use row positions)"
            )


def _partition(ids: pa.StringArray, parts: int) -> np.ndarray:
    """A hash of each id's bytes, modulo `parts`, vectorised: no Python object per id.

    sum(local_i * T[b_i]) over an id's bytes, where local_i is the byte's place in the id, comes
    from two reductions over the global place g_i = start + local_i of each byte:
    sum(g_i * T[b_i]) - start * sum(T[b_i]) (uint64 arithmetic wraps, and the identity holds
    modulo 2^64), so no per-byte place inside the id is ever built."""
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32)[ids.offset : ids.offset + len(ids) + 1]
    buffer = ids.buffers()[2]
    if buffer is None or offsets[-1] == offsets[0]:
        return np.zeros(len(ids), dtype=np.uint8)
    starts = (offsets[:-1] - offsets[0]).astype(np.uint64)
    weights = _BYTE_WEIGHTS[np.frombuffer(buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]]
    places = np.arange(len(weights), dtype=np.uint64)
    nonempty = offsets[1:] > offsets[:-1]
    at = starts[nonempty].astype(np.int64)
    sums = np.zeros(len(ids), dtype=np.uint64)
    placed = np.zeros(len(ids), dtype=np.uint64)
    sums[nonempty] = np.add.reduceat(weights, at)
    placed[nonempty] = np.add.reduceat(places * weights, at)
    mixed = (placed - starts * sums) * np.uint64(0x9E3779B97F4A7C15) + sums
    mixed ^= mixed >> np.uint64(31)
    return (mixed % np.uint64(parts)).astype(np.uint8)


# A fixed random 64-bit weight per byte value (fixed: partitions need only be the same within a run).
_BYTE_WEIGHTS = np.random.default_rng(17).integers(1, 2**63, size=256, dtype=np.uint64) | np.uint64(1)


class _ColumnHash:
    """column_hash, fed a piece at a time."""

    def __init__(self, kind: pa.DataType) -> None:
        self.kind = kind
        self.sizes, self.data = hashlib.sha256(), hashlib.sha256()

    def update(self, column: pa.ChunkedArray) -> None:
        for chunk in column.chunks:
            for start in range(0, len(chunk), _HASH_PIECE_ROWS):
                piece_sizes, piece_data = _encode(chunk.slice(start, _HASH_PIECE_ROWS))
                self.sizes.update(piece_sizes)
                self.data.update(piece_data)

    def hexdigest(self) -> str:
        header = str(self.kind).encode()
        return hashlib.sha256(_framed(header) + self.sizes.digest() + self.data.digest()).hexdigest()


def column_hash(column: pa.ChunkedArray) -> str:
    """SHA-256 of a column's type and values, the same however the column is chunked.

    Each value is encoded on its own, so two columns hash alike only when their values are alike:
    a stream of sizes (8 bytes each, -1 for null, so a null differs from an empty string) and a
    stream of the value bytes those sizes split, hashed separately and then together.
    """
    hashed = _ColumnHash(column.type)
    hashed.update(column)
    return hashed.hexdigest()


def _encode(array: pa.Array) -> tuple[bytes, bytes]:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if any(test(kind) for test in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                                   pa.types.is_large_binary)):
        return _encode_binary(array)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return _encode_numbers(array)
    return _encode_values(array.to_pylist())


def _encode_binary(array: pa.Array) -> tuple[bytes, bytes]:
    """Sizes and bytes of string or binary values, read from the array's own buffers (32- or
    64-bit offsets alike, so no cast copies them)."""
    wide = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    offsets = np.frombuffer(array.buffers()[1], dtype="<i8" if wide else "<i4")
    offsets = offsets[array.offset : array.offset + len(array) + 1]
    lengths = np.diff(offsets).astype("<i8")
    if array.null_count:
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        sizes = np.where(valid, lengths, -1).astype("<i8").tobytes()
    else:
        sizes = lengths.tobytes()
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
