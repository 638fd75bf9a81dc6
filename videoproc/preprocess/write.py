"""Frame-tensor shards: the output schema and a writer that streams rows into one Parquet file.

Rows reach the writer in manifest order and leave in row groups of a fixed row count, so the same
rows always give the same bytes whichever executor produced them. In clip mode a video's result
becomes one row per clip, with the clip columns; outside clip mode those columns do not exist, so
outputs made before clips existed keep their schema. Format version 2 adds the frame format,
named in the file's `videoproc` metadata (frame_format, compression, quality, chroma): `frames` is
binary for raw (C-order pixels; with compression zstd one zstd frame of them per row) and
list<binary> for png/jpeg/webp (one image file per frame, in time order). Version 1 files are the
raw layout without those keys. The frames column is written without dictionary encoding, Parquet
compression or statistics: pixels and images gain little from any of them, and a min/max statistic
of a 2 MB value would bloat every footer.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.common import storage
from videoproc.video.options import FrameFormat
from videoproc.video.process import VideoResult

FORMAT_VERSION = "2"
# Versions this release's readers read: 1 had raw frames only and no frame_format key.
READABLE_VERSIONS = ("1", "2")
ROWS_PER_GROUP = 32
# A row group also ends once its frames reach this many bytes, so that large rows (raw 720p: 44 MB
# each) do not make the parent hold a gigabyte per group while the next one fills.
GROUP_BYTES = 128 * 2**20
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
# Clip mode only, after the fixed columns: null on a video's failed or skipped row.
CLIP_FIELDS = [
    pa.field("clip_index", pa.int32()),
    pa.field("clip_start", pa.float64()),
    pa.field("clip_end", pa.float64()),
]
CLIP_NAMES = [f.name for f in CLIP_FIELDS]
# Names a manifest's own column may not take.
RESERVED_NAMES = BASE_NAMES + CLIP_NAMES
# Video-level counters: on a clip-mode video's first row only, so that summing a column counts once.
_VIDEO_COUNTERS = ("decode_errors", "frames_decoded", "frames_decoded_min", "bytes_read")
_SOURCE_NAMES = ["source_width", "source_height", "source_fps", "source_duration",
                 "source_num_frames", "codec", "rotation"]


_FRAMES_TEXT = {
    "raw": "raw C-order uint8 bytes of an array of shape `shape` (T, H, W, 3), RGB",
    "zstd": "one zstd frame of the raw C-order uint8 bytes of an array of shape `shape` (T, H, W, 3), RGB",
    "image": "list of T {fmt} images, one per frame in time order, each H x W RGB; `shape` is (T, H, W, 3)",
}


def output_schema(passthrough: pa.Schema, *, clips: bool = False, store: FrameFormat | None = None) -> pa.Schema:
    """The shard schema: the fixed columns, the clip columns in clip mode, then the manifest's
    other columns unchanged; `frames` is list<binary> for an image format."""
    store = store or FrameFormat()
    layout = {"format_version": FORMAT_VERSION, **frame_format_keys(store), "frames": _frames_text(store),
              "frame_indices": "presentation-order index per frame", "timestamps": "seconds per frame"}
    if clips:
        layout["clip_index"] = ("0-based clip of the video, one row per clip; clip_start, clip_end: the clip "
                                "window in seconds")
    fields = [_frames_field(store) if f.name == "frames" else f for f in BASE_FIELDS]
    fields += (CLIP_FIELDS if clips else []) + [passthrough.field(name) for name in passthrough.names]
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(layout).encode()})


def frame_format_keys(store: FrameFormat) -> dict[str, Any]:
    """The metadata keys that tell a reader how to decode `frames`."""
    keys: dict[str, Any] = {"frame_format": store.format, "compression": store.compression}
    if store.format in ("jpeg", "webp"):
        keys["quality"] = store.quality
    if store.format == "jpeg":
        keys["chroma"] = store.chroma
    return keys


def _frames_text(store: FrameFormat) -> str:
    if store.format != "raw":
        return _FRAMES_TEXT["image"].format(fmt=store.format.upper())
    return _FRAMES_TEXT["zstd" if store.compression == "zstd" else "raw"]


def _frames_field(store: FrameFormat) -> pa.Field:
    return pa.field("frames", pa.list_(pa.binary()) if store.format != "raw" else pa.binary())


def result_columns(result: VideoResult) -> dict[str, Any]:
    """One result as a dict of the fixed columns."""
    ok = result.status == "ok"
    row = {
        "id": result.id,
        "uri": result.uri,
        "status": result.status,
        "error": result.error,
        "error_kind": result.error_kind,
        "frames": _stored_frames(result),
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


def result_rows(result: VideoResult) -> list[dict[str, Any]]:
    """The output rows of one result: one per clip in clip mode (ok results), otherwise one."""
    row = result_columns(result)
    windows = result.clip_windows
    if result.status != "ok" or windows is None:
        return [row]
    count = len(windows)
    per_clip = result.shape[0] // count
    rows = []
    for k, (start, end) in enumerate(windows):
        span = slice(k * per_clip, (k + 1) * per_clip)
        clip = row | {
            "frames": _clip_frames(result, k, count),
            "shape": [per_clip, *row["shape"][1:]],
            "frame_indices": row["frame_indices"][span],
            "timestamps": row["timestamps"][span],
            "clip_index": k,
            "clip_start": start,
            "clip_end": end,
        }
        if k:
            clip |= dict.fromkeys(_VIDEO_COUNTERS, 0)
        rows.append(clip)
    return rows


def _stored_frames(result: VideoResult) -> Any:
    """Raw bytes, the row's one zstd blob, or the list of its per-frame images."""
    if result.encoded is None:
        return result.frames
    return result.encoded[0] if result.encoded_per == "row" else list(result.encoded)


def _clip_frames(result: VideoResult, k: int, count: int) -> Any:
    if result.encoded is None:
        size = len(result.frames) // count
        return memoryview(result.frames)[k * size : (k + 1) * size]
    if result.encoded_per == "row":
        return result.encoded[k]
    per_clip = len(result.encoded) // count
    return list(result.encoded[k * per_clip : (k + 1) * per_clip])


class ShardWriter:
    """Writes one shard to a private temporary file; `publish()` makes it visible atomically."""

    def __init__(self, *, schema: pa.Schema, final: storage.Location) -> None:
        self.schema = schema
        self.final = final
        self._tmp_path = _temp_path_for(final)
        try:
            self._writer = pq.ParquetWriter(
                self._tmp_path,
                schema,
                compression={name: ("none" if name == "frames" else "zstd") for name in schema.names},
                use_dictionary=[n for n in schema.names if n != "frames"],
                write_statistics=[n for n in schema.names if n != "frames"],
            )
        except BaseException:
            # Ctrl-C after the file was created but before anyone holds this writer to abort it.
            with contextlib.suppress(OSError):
                os.unlink(self._tmp_path)
            raise
        self._batch: list[dict[str, Any]] = []
        self._batch_bytes = 0
        # A full row group is written on a thread of its own: the caller goes back to receiving
        # results while Arrow builds and writes it (mostly outside the GIL), so a worker that
        # finishes its video meanwhile is not left waiting for the parent to read its frames.
        # At most one group is being written while the next one fills.
        self._thread: ThreadPoolExecutor | None = None
        self._writing: Future | None = None
        self.rows = 0
        self.seconds = 0.0  # time spent writing, for the benchmark's share-of-wall-time figure

    def add(self, row: dict[str, Any]) -> None:
        """Append one complete output row (fixed columns and pass-through columns). A failure to
        write an earlier row group is raised here or by close()."""
        self._batch.append(row)
        self._batch_bytes += _frame_bytes(row)
        if len(self._batch) >= ROWS_PER_GROUP or self._batch_bytes >= GROUP_BYTES:
            self._wait()
            if self._thread is None:
                self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="videoproc-shard-writer")
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            self._writing = self._thread.submit(self._write, batch)

    def close(self) -> None:
        """Finish the temporary file; nothing is visible to readers yet."""
        self._wait()
        self._stop_thread()
        self._write(self._batch)
        self._batch = []
        started = time.monotonic()
        self._writer.close()
        self.seconds += time.monotonic() - started

    def publish(self) -> None:
        """Make the finished file visible at its final name in one atomic step."""
        started = time.monotonic()
        storage.put_file_atomic(self._tmp_path, self.final)
        self.seconds += time.monotonic() - started

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the failure is why we abort, or is the disk's; the file goes anyway
            self._wait()
        self._stop_thread()
        with contextlib.suppress(Exception):
            self._writer.close()
        if os.path.exists(self._tmp_path):
            os.unlink(self._tmp_path)

    def _wait(self) -> None:
        """Let the row group being written finish; its error, if any, is raised here."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def _stop_thread(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    def _write(self, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        started = time.monotonic()
        table = _group_table(batch, self.schema)
        self._writer.write_table(table, row_group_size=len(batch))
        self.rows += len(batch)
        self.seconds += time.monotonic() - started


def _group_table(batch: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """One row group as a table. Raw frames are copied into the column's buffer by numpy, which
    lets go of the GIL while it copies: built by from_pylist, a group of 32 rows of 2.4 MB held the
    GIL 15 ms (over 200 ms into fresh memory), and the main process could not hand a worker its
    next video meanwhile. The other columns are small."""
    index = schema.get_field_index("frames")
    if schema.field(index).type != pa.binary():
        return pa.Table.from_pylist(batch, schema=schema)  # one image per frame: small values
    frames = [row.get("frames") for row in batch]
    lengths = [_frame_bytes(row) for row in batch]
    if sum(lengths) >= 2**31:
        return pa.Table.from_pylist(batch, schema=schema)  # past binary's 32-bit offsets: Arrow chunks it
    rest = pa.Table.from_pylist(batch, schema=schema.remove(index))  # keys not in the schema are left out
    return rest.add_column(index, schema.field(index), _binary_array(frames, lengths))


def _binary_array(values: list[Any], lengths: list[int]) -> pa.Array:
    """A binary array of bytes-like values (None: null), the bytes copied once, GIL released."""
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = pa.allocate_buffer(int(offsets[-1]))  # Arrow's pool: a freed group's memory is reused
    view = np.frombuffer(data, dtype=np.uint8)
    for value, start, stop in zip(values, offsets[:-1], offsets[1:], strict=True):
        if value is not None:
            view[start:stop] = np.frombuffer(value, dtype=np.uint8)
    present = np.array([v is not None for v in values])
    validity = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.Array.from_buffers(pa.binary(), len(values), [validity, pa.py_buffer(offsets), data])


def _frame_bytes(row: dict[str, Any]) -> int:
    frames = row.get("frames")
    if isinstance(frames, list):  # one encoded image per frame
        return sum(len(image) for image in frames)
    return len(frames) if frames is not None else 0


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
