"""Reading and checking the manifest: a Parquet file, a folder of them, or a glob, at any URL.

A manifest that cannot be planned is refused before any work (ManifestError naming the file, the
problem and the fix); a bad row inside a good manifest is a failed output row later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from videoproc import storage
from videoproc.errors import ManifestError
from videoproc.write import BASE_NAMES


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
        """What identifies the manifest's content for resume: row count and hashes of ids and uris."""
        return {
            "rows": self.num_rows,
            "ids_sha256": _column_hash(self.table.column("id")),
            "uris_sha256": _column_hash(self.table.column("uri")),
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
            with loc.fs.open(loc.path, "rb") as f:
                tables.append(pq.read_table(f))
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
    ids = pa.array([derived_id(i) for i in range(table.num_rows)], pa.string()) if derived else _string_column(table, id_column, url)
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
    clash = [c for c in columns if c in BASE_NAMES]
    if clash:
        raise ManifestError(
            f"manifest {url} has column(s) {', '.join(clash)} that the output reserves for its own "
            "use; rename them in the manifest"
        )


def _column_hash(column: pa.ChunkedArray) -> str:
    digest = hashlib.sha256()
    for value in column.to_pylist():
        digest.update(value.encode())
        digest.update(b"\0")
    return digest.hexdigest()
