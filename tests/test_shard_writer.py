"""The shard writer: row groups by rows and by bytes, written on a thread of their own, and a write
error is never lost on that thread."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from videoproc.common import storage
from videoproc.preprocess import write
from videoproc.preprocess.write import ROWS_PER_GROUP, ShardWriter, output_schema
from videoproc.video.options import FrameFormat


def _row(k: int, *, frame_bytes: int = 12) -> dict:
    return {"id": f"v{k:04d}", "uri": f"/videos/{k}.mp4", "status": "ok", "frames": bytes([k % 256]) * frame_bytes,
            "shape": [1, 2, 2, 3], "dtype": "uint8", "frame_indices": [k], "timestamps": [k / 30]}


def _writer(tmp_path) -> tuple[ShardWriter, str]:
    final = os.path.join(tmp_path, "data", "part-00000.parquet")
    return ShardWriter(schema=output_schema(pa.schema([])), final=storage.locate(final)), final


def _hidden_files(tmp_path) -> list[str]:
    return [n for n in os.listdir(os.path.join(tmp_path, "data")) if n.startswith(".")]


def test_rows_come_out_in_order_in_groups_of_the_row_count(tmp_path):
    writer, final = _writer(tmp_path)
    count = 2 * ROWS_PER_GROUP + 6
    for k in range(count):
        writer.add(_row(k))
    writer.close()
    writer.publish()
    shard = pq.ParquetFile(final)
    assert [shard.metadata.row_group(i).num_rows for i in range(shard.num_row_groups)] == [
        ROWS_PER_GROUP, ROWS_PER_GROUP, 6]
    table = shard.read()
    assert table.column("id").to_pylist() == [f"v{k:04d}" for k in range(count)]
    assert table.column("frames").to_pylist() == [_row(k)["frames"] for k in range(count)]
    assert writer.rows == count and not _hidden_files(tmp_path)


def test_large_rows_end_a_group_at_its_byte_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(write, "GROUP_BYTES", 1000)
    writer, final = _writer(tmp_path)
    for k in range(10):
        writer.add(_row(k, frame_bytes=300))  # the 4th row of a group passes 1000 bytes
    writer.close()
    writer.publish()
    shard = pq.ParquetFile(final)
    assert [shard.metadata.row_group(i).num_rows for i in range(shard.num_row_groups)] == [4, 4, 2]


def test_a_failed_group_write_is_raised_by_the_next_add_or_close(tmp_path):
    writer, _ = _writer(tmp_path)
    bad = _row(0) | {"shape": "not a list"}  # fails only when Arrow builds the group, on the writer's thread
    for k in range(ROWS_PER_GROUP - 1):
        writer.add(_row(k))
    writer.add(bad)  # completes the group: handed to the thread
    with pytest.raises(pa.ArrowInvalid):
        for k in range(ROWS_PER_GROUP):
            writer.add(_row(k))
        writer.close()
    writer.abort()
    assert not _hidden_files(tmp_path)


def test_a_failed_last_group_is_raised_by_close(tmp_path):
    writer, _ = _writer(tmp_path)
    writer.add(_row(0) | {"frame_indices": ["x"]})
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        writer.close()
    writer.abort()
    assert not _hidden_files(tmp_path)


def test_a_group_of_raw_frames_is_the_table_arrow_builds_from_the_rows():
    # Failed rows (no frames), clip slices (memoryviews), bytearrays and empty values alike.
    clip = bytearray(range(256)) * 3
    frames = [b"\x01\x02", None, memoryview(clip)[256:512], bytearray(b"xyz"), b"", None, bytes(clip)]
    batch = [_row(k) | {"frames": f} for k, f in enumerate(frames)]
    schema = output_schema(pa.schema([("caption", pa.string())]))
    batch[0]["caption"] = "a passed-through column"
    built = write._group_table(batch, schema)
    assert built.equals(pa.Table.from_pylist(batch, schema=schema))
    assert built.column("frames").null_count == 2


def test_image_frames_keep_their_list_column():
    schema = write.output_schema(pa.schema([]), store=FrameFormat(format="jpeg"))
    batch = [_row(0) | {"frames": [b"\xff\xd8a", b"\xff\xd8b"]}, _row(1) | {"frames": None}]
    assert write._group_table(batch, schema).equals(pa.Table.from_pylist(batch, schema=schema))
