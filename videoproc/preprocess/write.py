"""Frame-tensor shards: the output schema and a writer that streams rows into one Parquet file.

Rows reach the writer in manifest order and leave in row groups of a fixed row count, so the same
rows always give the same bytes whichever executor produced them. The frames column is written
without dictionary encoding, compression or statistics: raw pixels gain little from any of them,
and a min/max statistic of a 2 MB value would bloat every footer.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.common import storage
from videoproc.video.process import VideoResult

FORMAT_VERSION = "1"
ROWS_PER_GROUP = 32
METADATA_KEY = b"videoproc"

BASE_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("uri", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("error_kind", pa.string()),
    pa.field("frames", pa.binary()),
    pa.field("shape", pa.list_(pa.int32())),
    pa.field("dtype", pa.string()),
    pa.field("frame_indices", pa.list_(pa.int64())),
    pa.field("timestamps", pa.list_(pa.float64())),
    pa.field("source_width", pa.int32()),
    pa.field("source_height", pa.int32()),
    pa.field("source_fps", pa.float64()),
    pa.field("source_duration", pa.float64()),
    pa.field("source_num_frames", pa.int64()),
    pa.field("codec", pa.string()),
    pa.field("rotation", pa.int32()),
    pa.field("decode_errors", pa.int32()),
    pa.field("frames_decoded", pa.int64()),
    pa.field("frames_decoded_min", pa.int64()),
    pa.field("bytes_read", pa.int64()),
]
BASE_NAMES = [f.name for f in BASE_FIELDS]
_SOURCE_NAMES = ["source_width", "source_height", "source_fps", "source_duration",
                 "source_num_frames", "codec", "rotation"]


def output_schema(passthrough: pa.Schema) -> pa.Schema:
    """The shard schema: the fixed columns, then the manifest's other columns unchanged."""
    layout = (
        f'{{"format_version": "{FORMAT_VERSION}", "frames": "raw C-order uint8 bytes of an array of shape `shape` '
        '(T, H, W, 3), RGB", "frame_indices": "presentation-order index per frame", '
        '"timestamps": "seconds per frame"}'
    )
    fields = BASE_FIELDS + [passthrough.field(name) for name in passthrough.names]
    return pa.schema(fields, metadata={METADATA_KEY: layout.encode()})


def result_columns(result: VideoResult) -> dict[str, Any]:
    """One result as a dict of the fixed columns."""
    ok = result.status == "ok"
    row = {
        "id": result.id,
        "uri": result.uri,
        "status": result.status,
        "error": result.error,
        "error_kind": result.error_kind,
        "frames": result.frames,
        "shape": list(result.shape) if result.shape else None,
        "dtype": "uint8" if ok else None,
        "frame_indices": result.frame_indices,
        "timestamps": result.timestamps,
        "decode_errors": result.decode_errors,
        "frames_decoded": result.frames_decoded,
        "frames_decoded_min": result.frames_decoded_min,
        "bytes_read": result.bytes_read,
    }
    for name in _SOURCE_NAMES:
        row[name] = result.source.get(name)
    return row


class ShardWriter:
    """Writes one shard to a private temporary file; `publish()` makes it visible atomically."""

    def __init__(self, *, schema: pa.Schema, final: storage.Location) -> None:
        self.schema = schema
        self.final = final
        self._tmp_path = _temp_path_for(final)
        self._writer = pq.ParquetWriter(
            self._tmp_path,
            schema,
            compression={name: ("none" if name == "frames" else "zstd") for name in schema.names},
            use_dictionary=[n for n in schema.names if n != "frames"],
            write_statistics=[n for n in schema.names if n != "frames"],
        )
        self._batch: list[dict[str, Any]] = []
        self.rows = 0
        self.seconds = 0.0  # time spent writing, for the benchmark's share-of-wall-time figure

    def add(self, row: dict[str, Any]) -> None:
        """Append one complete output row (fixed columns and pass-through columns)."""
        self._batch.append(row)
        if len(self._batch) >= ROWS_PER_GROUP:
            self._flush()

    def close(self) -> None:
        """Finish the temporary file; nothing is visible to readers yet."""
        self._flush()
        started = time.monotonic()
        self._writer.close()
        self.seconds += time.monotonic() - started

    def publish(self) -> None:
        """Make the finished file visible at its final name in one atomic step."""
        started = time.monotonic()
        storage.put_file_atomic(self._tmp_path, self.final)
        self.seconds += time.monotonic() - started

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # already closed, or the disk is the problem; the temp file goes anyway
            self._writer.close()
        if os.path.exists(self._tmp_path):
            os.unlink(self._tmp_path)

    def _flush(self) -> None:
        if not self._batch:
            return
        started = time.monotonic()
        table = pa.Table.from_pylist(self._batch, schema=self.schema)
        self._writer.write_table(table, row_group_size=len(self._batch))
        self.rows += len(self._batch)
        self._batch = []
        self.seconds += time.monotonic() - started


def _temp_path_for(final: storage.Location) -> str:
    if final.is_local:
        # Beside the final file, so the publish is a same-filesystem rename; dot-files are skipped
        # by Parquet dataset readers, so a crash never leaves a readable partial shard.
        folder = os.path.dirname(final.path)
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, storage.temp_name(os.path.basename(final.path)))
    fd, path = tempfile.mkstemp(prefix="videoproc-shard-", suffix=".parquet")
    os.close(fd)
    return path
