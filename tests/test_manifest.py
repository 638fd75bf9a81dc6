"""The manifest contract: where manifests come from, which are refused, and what passes through."""

from __future__ import annotations

import datetime
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import read_output, write_manifest
from videoproc.common.errors import ManifestError
from videoproc.preprocess.config import build_options
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.manifest import derived_id, read_manifest


def _table(manifest) -> pa.Table:
    return manifest.rows_for(0, manifest.num_rows)


def _rows(n: int, start: int = 0) -> dict:
    return {"id": [f"v{i}" for i in range(start, start + n)],
            "uri": [f"/videos/{i}.mp4" for i in range(start, start + n)]}


def test_single_file(tmp_path):
    path = write_manifest(str(tmp_path / "m.parquet"), {**_rows(3), "caption": ["a", "b", "c"]})
    manifest = read_manifest(path)
    assert manifest.files == (path,)
    assert manifest.num_rows == 3 and not manifest.derived_ids
    assert _table(manifest).column_names == ["id", "uri", "caption"]
    assert _table(manifest).column("id").to_pylist() == ["v0", "v1", "v2"]


def test_folder_of_files_in_name_order(tmp_path):
    folder = tmp_path / "manifest"
    (folder / "sub").mkdir(parents=True)
    write_manifest(str(folder / "b.parquet"), _rows(2, start=10))
    write_manifest(str(folder / "a.parquet"), _rows(3))
    (folder / "README.txt").write_text("not parquet; ignored")
    manifest = read_manifest(str(folder))
    assert [os.path.basename(f) for f in manifest.files] == ["a.parquet", "b.parquet"]
    assert _table(manifest).column("id").to_pylist() == ["v0", "v1", "v2", "v10", "v11"]


def test_glob(tmp_path):
    for name, start in (("part-1.parquet", 5), ("part-0.parquet", 0), ("other.parquet", 100)):
        write_manifest(str(tmp_path / name), _rows(2, start=start))
    manifest = read_manifest(str(tmp_path / "part-*.parquet"))
    assert _table(manifest).column("id").to_pylist() == ["v0", "v1", "v5", "v6"]


def test_file_url(tmp_path):
    path = write_manifest(str(tmp_path / "m.parquet"), _rows(2))
    assert read_manifest(f"file://{path}").num_rows == 2


def test_derived_ids_are_stable_row_positions(tmp_path):
    path = write_manifest(str(tmp_path / "m.parquet"), {"uri": ["a.mp4", "b.mp4", "c.mp4"]})
    manifest = read_manifest(path)
    assert manifest.derived_ids
    assert _table(manifest).column("id").to_pylist() == ["row-000000000", "row-000000001", "row-000000002"]
    assert derived_id(1234) == "row-000001234"
    assert read_manifest(path).fingerprint() == manifest.fingerprint()


def test_uri_column_option(tmp_path):
    path = write_manifest(str(tmp_path / "m.parquet"), {"path": ["a.mp4"], "uri_note": ["kept"]})
    manifest = read_manifest(path, uri_column="path")
    assert _table(manifest).column("uri").to_pylist() == ["a.mp4"]
    assert _table(manifest).column_names == ["id", "uri", "uri_note"]


def test_missing_column_names_the_file_and_the_fix(tmp_path):
    path = write_manifest(str(tmp_path / "m.parquet"), {"video": ["a.mp4"], "caption": ["x"]})
    with pytest.raises(ManifestError, match=rf"manifest {path} has no column 'uri' \(columns: video, caption\); "
                                            r"add it or pass --uri-column NAME"):
        read_manifest(path)
    with pytest.raises(ManifestError, match=r"has no column 'path'"):
        read_manifest(path, uri_column="path")


def test_duplicate_ids_are_refused(tmp_path):
    path = write_manifest(str(tmp_path / "m.parquet"), {"id": ["a", "b", "a", "c", "c"], "uri": list("12345")})
    with pytest.raises(ManifestError, match=rf"manifest {path} has 2 duplicate id\(s\): 'a', 'c'; "
                                            r"ids must be unique \(drop the id column"):
        read_manifest(path)


def test_duplicate_ids_across_files_are_refused(tmp_path):
    write_manifest(str(tmp_path / "a.parquet"), _rows(2))
    write_manifest(str(tmp_path / "b.parquet"), _rows(2))
    with pytest.raises(ManifestError, match=r"has 2 duplicate id\(s\): 'v0', 'v1'"):
        read_manifest(str(tmp_path))


@pytest.mark.parametrize("column", ["status", "frames", "shape", "timestamps", "decode_errors"])
def test_reserved_column_names_are_refused(tmp_path, column):
    path = write_manifest(str(tmp_path / "m.parquet"), {**_rows(1), column: ["x"]})
    with pytest.raises(ManifestError, match=rf"manifest {path} has column\(s\) {column} that the output "
                                            r"reserves for its own use; rename them"):
        read_manifest(path)


def test_unreadable_file_is_refused(tmp_path):
    path = tmp_path / "m.parquet"
    path.write_text("uri\n/videos/a.mp4\n")  # a CSV wearing a .parquet name
    with pytest.raises(ManifestError, match=rf"cannot read manifest file {path}: .*; the manifest must be Parquet"):
        read_manifest(str(path))


def test_missing_manifest_is_refused(tmp_path):
    path = str(tmp_path / "nothing.parquet")
    with pytest.raises(ManifestError, match=rf"manifest {path} matches no Parquet file; "
                                            r"give a .parquet file, a folder of them, or a glob"):
        read_manifest(path)


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(ManifestError, match=r"matches no Parquet file"):
        read_manifest(str(tmp_path))


def test_uri_column_must_hold_strings(tmp_path):
    path = write_manifest(str(tmp_path / "m.parquet"), {"uri": [1, 2]})
    with pytest.raises(ManifestError, match=r"column 'uri' must hold strings \(got int64\)"):
        read_manifest(path)


def test_empty_uris_are_refused_with_the_first_row(tmp_path):
    path = write_manifest(str(tmp_path / "m.parquet"), {"uri": ["a", None, "b", None]})
    with pytest.raises(ManifestError, match=r"column 'uri' has 2 empty value\(s\), the first at row 1; "
                                            r"every row needs one"):
        read_manifest(path)


def test_incompatible_files_are_refused(tmp_path):
    write_manifest(str(tmp_path / "a.parquet"), {**_rows(1), "label": [1]})
    write_manifest(str(tmp_path / "b.parquet"), {**_rows(1, start=5), "label": ["one"]})
    with pytest.raises(ManifestError, match=rf"manifest files under {tmp_path} have incompatible columns"):
        read_manifest(str(tmp_path))


def _typed_columns() -> pa.Table:
    return pa.table(
        {
            "uri": ["a.mp4", "b.mp4"],
            "caption": ["a cat", None],
            "label": pa.array([3, 7], pa.int16()),
            "score": pa.array([0.5, 1.25], pa.float32()),
            "tags": pa.array([["x", "y"], []], pa.list_(pa.string())),
            "meta": pa.array([{"w": 1, "src": "web"}, {"w": 2, "src": "cam"}]),
            "taken": pa.array([datetime.date(2020, 1, 2), datetime.date(2021, 3, 4)], pa.date32()),
        }
    )


def test_pass_through_columns_keep_their_types_in_the_manifest(tmp_path):
    table = _typed_columns()
    manifest = read_manifest(write_manifest(str(tmp_path / "m.parquet"), table))
    schema = manifest.passthrough_schema
    assert schema.names == ["caption", "label", "score", "tags", "meta", "taken"]
    for name in schema.names:
        assert schema.field(name).type == table.schema.field(name).type
    assert manifest.passthrough_rows(0, 2) == table.drop_columns(["uri"]).to_pylist()


def test_pass_through_columns_reach_the_output_unchanged(tmp_path, sample_clips):
    table = _typed_columns()
    clip = sample_clips["testsrc_h264_3s.mp4"]
    table = table.set_column(0, "uri", pa.array([clip, str(tmp_path / "missing.mp4")]))
    manifest = write_manifest(str(tmp_path / "m.parquet"), table)
    options = build_options(
        manifest=manifest,
        values={"output": str(tmp_path / "out"), "num_frames": 2, "size": "16x16", "workers": 1, "progress": "off"},
    )
    run_preprocess(options)
    rows = read_output(str(tmp_path / "out"))
    assert [r["status"] for r in rows] == ["ok", "failed"]  # failed rows keep their columns too
    written = pq.read_schema(str(tmp_path / "out" / "data" / "part-00000.parquet"))
    for name in ("caption", "label", "score", "tags", "meta", "taken"):
        assert written.field(name).type == table.schema.field(name).type
        assert [r[name] for r in rows] == table.column(name).to_pylist()
    assert [r["id"] for r in rows] == ["row-000000000", "row-000000001"]


def _fingerprint(tmp_path, columns: dict | pa.Table, name: str = "m.parquet") -> dict:
    return read_manifest(write_manifest(str(tmp_path / name), columns)).fingerprint()


def test_fingerprint_covers_every_output_column_with_its_type(tmp_path):
    fingerprint = _fingerprint(tmp_path, _typed_columns())
    assert fingerprint["fingerprint_version"] == 2 and fingerprint["rows"] == 2
    assert fingerprint["column_order"] == ["id", "uri", "caption", "label", "score", "tags", "meta", "taken"]
    assert fingerprint["columns"]["label"]["type"] == "int16"
    assert set(fingerprint["columns"]) == set(fingerprint["column_order"])


@pytest.mark.parametrize("change", ["caption", "null-caption", "label-type", "tags", "meta", "order"])
def test_fingerprint_changes_with_any_output_column(tmp_path, change):
    table = _typed_columns()
    edits = {
        "caption": lambda t: t.set_column(1, "caption", pa.array(["a cat!", None])),
        "null-caption": lambda t: t.set_column(1, "caption", pa.array(["a cat", ""])),  # null is not ""
        "label-type": lambda t: t.set_column(2, "label", pa.array([3, 7], pa.int32())),
        "tags": lambda t: t.set_column(4, "tags", pa.array([["xy"], []], pa.list_(pa.string()))),
        "meta": lambda t: t.set_column(5, "meta", pa.array([{"w": 1, "src": "web"}, {"w": 3, "src": "cam"}])),
        "order": lambda t: t.select(["uri", "label", "caption", "score", "tags", "meta", "taken"]),
    }
    before = _fingerprint(tmp_path, table, "a.parquet")
    after = _fingerprint(tmp_path, edits[change](table), "b.parquet")
    assert before != after and before["rows"] == after["rows"]


def test_fingerprint_values_are_length_prefixed(tmp_path):
    """The old NUL-joined hash gave ['a\\0b'] and ['a', 'b'] one digest, and ['ab', 'c'] and
    ['a', 'bc'] of two columns could trade bytes; every value now carries its own length."""
    joined = {"id": ["x\0y", "z"], "uri": ["ab", "c"]}
    split = {"id": ["x", "y\0z"], "uri": ["a", "bc"]}
    a, b = _fingerprint(tmp_path, joined, "a.parquet"), _fingerprint(tmp_path, split, "b.parquet")
    assert a["columns"]["id"] != b["columns"]["id"] and a["columns"]["uri"] != b["columns"]["uri"]


def test_fingerprint_does_not_depend_on_files_or_row_groups(tmp_path):
    table = pa.table({"id": [f"v{i}" for i in range(10)], "uri": [f"{i}.mp4" for i in range(10)],
                      "caption": [None if i % 3 == 0 else f"c{i}" for i in range(10)],
                      "score": pa.array([float(i) if i % 4 else None for i in range(10)])})
    one = write_manifest(str(tmp_path / "one.parquet"), table)
    folder = tmp_path / "parts"
    folder.mkdir()
    write_manifest(str(folder / "a.parquet"), table.slice(0, 3))
    pq.write_table(table.slice(3), str(folder / "b.parquet"), row_group_size=2)
    assert read_manifest(str(folder)).group_rows == ((3,), (2, 2, 2, 1))
    assert read_manifest(one).fingerprint() == read_manifest(str(folder)).fingerprint()
