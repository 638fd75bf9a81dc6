"""The manifest at scale: planned from Parquet metadata, each shard's rows read by whoever runs it,
the fingerprint and the duplicate check streamed, and the driver's memory flat in manifest size."""

from __future__ import annotations

import hashlib
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import read_output
from videoproc.common.errors import ManifestError
from videoproc.preprocess import manifest as manifest_module
from videoproc.preprocess.config import build_options
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.manifest import column_hash, derived_id, derived_ids, read_manifest


def _table(start: int, n: int, *, with_ids: bool = True) -> pa.Table:
    columns = {
        "uri": [f"/videos/{i}.mp4" for i in range(start, start + n)],
        "caption": [None if i % 7 == 0 else f"caption {i}" for i in range(start, start + n)],
        "score": pa.array([float(i) / 3 for i in range(start, start + n)]),
    }
    return pa.table({"id": [f"v{i}" for i in range(start, start + n)], **columns} if with_ids else columns)


def _parts(folder, sizes=(23, 41, 7), *, group=5, with_ids=True) -> pa.Table:
    """Several files of several row groups each; the whole manifest as one table."""
    folder.mkdir(exist_ok=True)
    tables, start = [], 0
    for k, n in enumerate(sizes):
        table = _table(start, n, with_ids=with_ids)
        pq.write_table(table, str(folder / f"part-{k}.parquet"), row_group_size=group)
        tables.append(table)
        start += n
    return pa.concat_tables(tables)


def _reference_fingerprint(table: pa.Table) -> dict:
    """What the in-memory fingerprint of version 2 gave: column_hash of every whole column."""
    return {
        "fingerprint_version": 2, "rows": table.num_rows, "column_order": table.schema.names,
        "columns": {f.name: {"type": str(f.type), "sha256": column_hash(table.column(f.name))} for f in table.schema},
    }


def test_plan_comes_from_metadata(tmp_path):
    _parts(tmp_path / "m")
    manifest = read_manifest(str(tmp_path / "m"))
    assert manifest.file_rows == (23, 41, 7) and manifest.num_rows == 71
    assert manifest.group_rows == ((5, 5, 5, 5, 3), (5,) * 8 + (1,), (5, 2))
    assert manifest.schema.names == ["id", "uri", "caption", "score"]


@pytest.mark.parametrize(("start", "stop"), [(0, 71), (3, 4), (20, 30), (22, 65), (64, 71), (70, 71), (5, 5)])
def test_rows_for_reads_any_range_in_order(tmp_path, start, stop):
    whole = _parts(tmp_path / "m")
    manifest = read_manifest(str(tmp_path / "m"))
    assert manifest.rows_for(start, stop).to_pylist() == whole.slice(start, stop - start).to_pylist()


def test_fingerprint_is_the_in_memory_one(tmp_path, monkeypatch):
    whole = _parts(tmp_path / "m")
    monkeypatch.setattr(manifest_module, "_HASH_PIECE_ROWS", 4)  # pieces cross row groups and files
    streamed = read_manifest(str(tmp_path / "m")).fingerprint()
    assert streamed == _reference_fingerprint(whole)
    one = str(tmp_path / "one.parquet")
    pq.write_table(whole, one)
    assert read_manifest(one).fingerprint() == streamed


def test_fingerprint_of_derived_ids_is_the_in_memory_one(tmp_path):
    whole = _parts(tmp_path / "m", with_ids=False)
    ids = pa.array([derived_id(i) for i in range(whole.num_rows)], pa.string())
    reference = pa.table([ids, *whole.columns], names=["id", *whole.schema.names])
    assert read_manifest(str(tmp_path / "m")).fingerprint() == _reference_fingerprint(reference)


@pytest.mark.parametrize(("with_ids", "digest"), [
    (True, "3a3c50d56646bc3c2acc2068247c542696f59371d0b3a2e7c4154c8880bae34d"),
    (False, "a9c8d26c65299029b7c6cc22e2db2fa31363e3f4807a2d99f19d187e105779a5"),
])
def test_fingerprint_is_what_the_whole_table_version_wrote(tmp_path, with_ids, digest):
    """The digest the in-memory reader (the whole manifest in one table) gave for this manifest, so
    outputs it made still resume."""
    _parts(tmp_path / "m", with_ids=with_ids)
    fingerprint = read_manifest(str(tmp_path / "m")).fingerprint()
    assert hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest() == digest


def test_derived_ids_are_built_like_derived_id():
    for start, stop in ((0, 3), (999_999_990, 1_000_000_005), (123_456, 123_460)):
        assert derived_ids(start, stop).to_pylist() == [derived_id(i) for i in range(start, stop)]


def test_duplicates_across_files_and_row_groups_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "_IDS_PER_PARTITION", 8)  # several spill partitions
    folder = tmp_path / "m"
    folder.mkdir()
    first = _table(0, 30)
    second = _table(30, 30).set_column(0, "id", pa.array([f"v{i}" for i in range(30, 57)] + ["v3", "v12", "v3"]))
    pq.write_table(first, str(folder / "a.parquet"), row_group_size=4)
    pq.write_table(second, str(folder / "b.parquet"), row_group_size=4)
    with pytest.raises(ManifestError, match=rf"manifest {folder} has 2 duplicate id\(s\): 'v3', 'v12'; "
                                            r"ids must be unique"):
        read_manifest(str(folder))


def test_many_duplicates_show_the_first_five(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "_IDS_PER_PARTITION", 16)
    ids = [f"d{i % 40}" for i in range(100)]
    path = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({"id": ids, "uri": ["u"] * 100}), path, row_group_size=9)
    with pytest.raises(ManifestError, match=r"has 40 duplicate id\(s\): 'd0', 'd1', 'd2', 'd3', 'd4'; "):
        read_manifest(path)


def test_empty_uri_in_a_later_file_names_its_row(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    pq.write_table(_table(0, 10), str(folder / "a.parquet"), row_group_size=3)
    late = _table(10, 10).set_column(1, "uri", pa.array([f"u{i}" for i in range(7)] + [None, "x", None]))
    pq.write_table(late, str(folder / "b.parquet"), row_group_size=3)
    with pytest.raises(ManifestError, match=r"column 'uri' has 2 empty value\(s\), the first at row 17"):
        read_manifest(str(folder))


def test_multi_file_manifest_processes_in_order_with_its_columns(tmp_path, sample_clips):
    clip = sample_clips["testsrc_h264_3s.mp4"]
    folder = tmp_path / "m"
    folder.mkdir()
    tables = []
    for k, (start, n) in enumerate(((0, 5), (5, 4))):
        table = _table(start, n).set_column(1, "uri", pa.array([clip] * n))
        pq.write_table(table, str(folder / f"part-{k}.parquet"), row_group_size=2)
        tables.append(table)
    whole = pa.concat_tables(tables)
    out = tmp_path / "out"
    options = build_options(manifest=str(folder), values={
        "output": str(out), "num_frames": 2, "size": "16x16", "workers": 2, "progress": "off", "shard_size": 3,
    })
    assert run_preprocess(options).exit_code == 0
    rows = read_output(str(out))
    for name in ("id", "caption", "score"):
        assert [r[name] for r in rows] == whole.column(name).to_pylist()
    assert {r["status"] for r in rows} == {"ok"}
    run = json.loads((out / "_videoproc" / "run.json").read_text())
    assert run["plan"] == {"rows": 9, "shard_size": 3, "shards": 3} and "shards" not in run


def test_output_of_an_older_run_json_with_a_shard_list_still_resumes(tmp_path, sample_clips):
    clip = sample_clips["testsrc_h264_3s.mp4"]
    path = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({"id": [f"v{i}" for i in range(4)], "uri": [clip] * 4}), path)
    out = tmp_path / "out"
    values = {"output": str(out), "num_frames": 2, "size": "16x16", "workers": 1, "progress": "off", "shard_size": 2}
    run_preprocess(build_options(manifest=path, values=values))
    run_json = out / "_videoproc" / "run.json"
    run = json.loads(run_json.read_text())
    plan = run.pop("plan")
    assert plan == {"rows": 4, "shard_size": 2, "shards": 2}
    run["shards"] = [{"index": 0, "start": 0, "stop": 2}, {"index": 1, "start": 2, "stop": 4}]  # as before
    run_json.write_text(json.dumps(run))
    os.remove(out / "_videoproc" / "shards" / "part-00001.json")
    report = run_preprocess(build_options(manifest=path, values=values))
    assert report.exit_code == 0 and report.summary["shards_committed"] == 2
    assert [r["id"] for r in read_output(str(out))] == ["v0", "v1", "v2", "v3"]


@pytest.mark.slow
def test_driver_memory_stays_bounded_at_a_million_rows(tmp_path):
    """Indexing, fingerprint, duplicate check and the first shard of a 1M-row manifest, in a fresh
    driver process: its peak RSS stays under 300 MB."""
    from bench.manifest_scale import measure, write_synthetic

    manifest = write_synthetic(str(tmp_path / "m.parquet"), 1_000_000)
    result = measure(manifest, str(tmp_path / "out"))
    assert result["first_shard_rows"] == 1000
    assert result["peak_rss_mb"] < 300, result


def test_ray_task_that_cannot_read_the_manifest_leaves_its_shard_with_the_fix(tmp_path, sample_clips):
    """What a node without the driver's local manifest sees, without Ray: the task's read fails."""
    from videoproc.preprocess.executor_ray import run_shard
    from videoproc.preprocess.runstate import Shard
    from videoproc.preprocess.shards import ShardWork
    from videoproc.preprocess.write import output_schema

    path = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({"uri": [sample_clips["testsrc_h264_3s.mp4"]] * 2}), path)
    manifest = read_manifest(path)
    os.remove(path)
    options = build_options(manifest=path, values={"output": str(tmp_path / "out"), "num_frames": 2,
                                                   "size": "16x16", "progress": "off"})
    outcome, statuses = run_shard(ShardWork(shard=Shard(index=0, start=0, stop=2), manifest=manifest),
                                  schema=output_schema(manifest.passthrough_schema), options=options,
                                  final_url=str(tmp_path / "out" / "data" / "part-00000.parquet"), folder=str(tmp_path))
    assert outcome.stats is None and statuses == []
    assert outcome.error.startswith("shard part-00000: a Ray worker cannot read the manifest (")
    assert outcome.error.endswith("the manifest must be where every node reads it: object storage, or a shared "
                                  "filesystem at the same path")
    assert not os.path.exists(tmp_path / "out" / "data")
