"""One unit (a row group of a shard) as rows: the ok rows, with frames as (T, H, W, 3) arrays.

In the raw format the frames column holds each row's pixels as one binary value, so a row's frames
are the byte range [offsets[i], offsets[i+1]) of the column's data buffer. Reading them through
`np.frombuffer` over that range costs no copy; whoever wants a writable array or a tensor makes the
one copy. Other formats (zstd, png, jpeg, webp; videoproc.read.decode) are decoded into a new
read-only array per row, and only for ok rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.common import storage
from videoproc.preprocess.write import BASE_NAMES
from videoproc.read.decode import StoredFormat, decode_frames, stored_format
from videoproc.read.units import ReadError, Unit

Layout = Literal["THWC", "TCHW"]
LAYOUTS = ("THWC", "TCHW")
# Read from every shard whatever the caller asks for: the row's identity, its pixels and their times.
CORE_COLUMNS = ("id", "status", "frames", "shape", "timestamps", "frame_indices")


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ReadError(f"layout must be one of {list(LAYOUTS)} (got {layout!r}); THWC is the stored order")


def check_columns(columns: Sequence[str]) -> None:
    """`columns` names fixed output columns to add to each row (pass-through columns always come)."""
    unknown = [c for c in columns if c not in BASE_NAMES]
    if unknown:
        raise ReadError(
            f"columns {unknown} are not output columns; choose from {BASE_NAMES} (the manifest's own "
            "columns are passed through without asking)"
        )


class UnitReader:
    """Reads units one after another, keeping the last shard file open since neighbours often share it."""

    def __init__(self, *, storage_options: dict | None = None) -> None:
        self._storage_options = storage_options or {}
        self._url: str | None = None
        self._file: Any = None
        self._parquet: pq.ParquetFile | None = None

    def read(self, unit: Unit, *, columns: Sequence[str] = ()) -> pa.Table:
        parquet = self._open(unit.url)
        names = parquet.schema_arrow.names
        wanted = [n for n in names if n in CORE_COLUMNS or n in columns or n not in BASE_NAMES]
        return parquet.read_row_group(unit.row_group, columns=wanted)

    def read_columns(self, unit: Unit, names: Sequence[str]) -> pa.Table:
        """Only the named columns of a unit: a cheap read when the frames are not needed."""
        return self._open(unit.url).read_row_group(unit.row_group, columns=list(names))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._url, self._file, self._parquet = None, None, None

    def _open(self, url: str) -> pq.ParquetFile:
        if url != self._url:
            self.close()
            loc = storage.locate(url, storage_options=self._storage_options)
            # Local files through Arrow's own file reader: a Python file object halves the throughput.
            self._file = pa.OSFile(loc.path) if loc.is_local else loc.fs.open(loc.path, "rb")
            self._parquet = pq.ParquetFile(self._file)
            self._url = url
        return self._parquet


def ok_rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    """The ok rows of a unit's table, frames as read-only (T, H, W, 3) uint8 views of its buffer."""
    for batch in table.to_batches():
        yield from _batch_rows(batch)


def _batch_rows(batch: pa.RecordBatch) -> Iterator[dict[str, Any]]:
    status = batch.column("status").to_pylist()
    keep = [i for i, s in enumerate(status) if s == "ok"]
    if not keep:
        return
    fmt = stored_format(batch.schema.metadata)
    column = batch.column("frames")
    frames = column.to_pylist() if fmt.frame_format != "raw" else binary_views(column)
    shapes = batch.column("shape").to_pylist()
    timestamps = list_views(batch.column("timestamps"))
    indices = list_views(batch.column("frame_indices"))
    others = {n: batch.column(n).to_pylist() for n in batch.schema.names if n not in CORE_COLUMNS}
    ids = batch.column("id").to_pylist()
    for i in keep:
        row = {"id": ids[i], "frames": _decode_row(ids[i], frames[i], shapes[i], fmt), "timestamps": timestamps[i],
               "frame_indices": indices[i]}
        row.update({n: values[i] for n, values in others.items()})
        yield row


def _decode_row(row_id: Any, value: Any, shape: list[int], fmt: StoredFormat) -> np.ndarray:
    try:
        return decode_frames(value, shape, fmt)
    except ReadError as exc:  # name the row: the decoder knows only the images
        raise ReadError(f"row id={row_id!r}: {exc}") from None


def binary_views(array: pa.Array) -> list[np.ndarray]:
    """Each value of a binary array as a uint8 numpy view of the array's data buffer (no copy)."""
    _, offsets_buf, data_buf = array.buffers()
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    offsets = np.frombuffer(offsets_buf, offset_type)[array.offset : array.offset + len(array) + 1]
    if data_buf is None:
        return [np.empty(0, np.uint8) for _ in range(len(array))]
    data = np.frombuffer(data_buf, np.uint8)
    data.flags.writeable = False  # Arrow may hand out a mutable buffer; the shard's bytes stay as read
    return [data[offsets[i] : offsets[i + 1]] for i in range(len(array))]


def list_views(array: pa.ListArray) -> list[np.ndarray]:
    """Each list of a list array as a numpy view of its values."""
    values = array.values.to_numpy(zero_copy_only=False)
    offsets = array.offsets.to_numpy()
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(array))]


def arrange(frames: np.ndarray, layout: Layout) -> np.ndarray:
    """A (T, H, W, 3) view in the asked layout, still a view: TCHW is a transposed stride order."""
    return frames if layout == "THWC" else frames.transpose(0, 3, 1, 2)
