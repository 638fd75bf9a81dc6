"""The stage end to end through the real diffusers path with the tiny model, on the CPU."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gen_helpers import REPO, read_records, run_queue, write_queue
from videoproc.common.errors import OptionsError
from videoproc.generate.records import RECORD_SCHEMA
from videoproc.generate.requests import QueueError, key_for_id
from videoproc.generate.runner import OptionsChanged


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_text_and_image_to_video_with_tiny_random(small_rows, tmp_path):
    queue = write_queue(tmp_path / "q.parquet", [{**r, "category": f"c{i}"} for i, r in enumerate(small_rows)])
    summary = run_queue(queue, tmp_path / "out")
    assert (summary.total, summary.completed, summary.failed) == (3, 3, 0)
    records = read_records(tmp_path / "out")
    table = pq.read_table(tmp_path / "out" / "records.parquet")
    assert table.schema.names == [*RECORD_SCHEMA.names, "category"]
    assert [r["id"] for r in records] == ["t2v-a", "t2v-b", "i2v-a"]
    for record in records:
        path = tmp_path / "out" / "videos" / f"{record['id']}.mp4"
        assert record["status"] == "completed" and record["progress"] == 100 and record["object"] == "video"
        assert record["url"] == str(path) and record["sha256"] == sha(path)
        assert record["model"] == "tiny-random" and record["engine"] == "diffusers"
        assert "torch=" in record["library_versions"] and record["inference_time_s"] > 0
    assert (records[1]["width"], records[1]["height"], records[1]["num_frames"]) == (48, 32, 9)
    assert base64.b64decode(records[1]["b64_json"]) == (tmp_path / "out/videos/t2v-b.mp4").read_bytes()
    assert records[0]["b64_json"] is None and records[2]["category"] == "c2"
    assert records[2]["input_reference"].endswith("reference.png")


def test_same_seed_gives_identical_files(small_rows, tmp_path):
    queue = write_queue(tmp_path / "q.parquet", small_rows)
    run_queue(queue, tmp_path / "a")
    run_queue(queue, tmp_path / "b")
    a, b = read_records(tmp_path / "a"), read_records(tmp_path / "b")
    assert [r["sha256"] for r in a] == [r["sha256"] for r in b]
    assert (tmp_path / "a/videos/i2v-a.mp4").read_bytes() == (tmp_path / "b/videos/i2v-a.mp4").read_bytes()


def test_model_folders_loaded_by_path(small_rows, tiny_folders, tmp_path):
    """The tiny model saved with save_pretrained and loaded by path: the real local-folder path,
    pipeline class from model_index.json, text- and image-to-video, reproducible by seed."""
    queue = write_queue(tmp_path / "q.parquet", small_rows)
    models = (tiny_folders["t2v"], tiny_folders["i2v"])
    summary = run_queue(queue, tmp_path / "a", models=models)
    run_queue(queue, tmp_path / "b", models=models)
    a, b = read_records(tmp_path / "a"), read_records(tmp_path / "b")
    assert summary.completed == 3 and [r["model"] for r in a] == ["tiny-wan-t2v", "tiny-wan-t2v", "tiny-wan-i2v"]
    assert [r["sha256"] for r in a] == [r["sha256"] for r in b]


def test_different_seeds_differ(small_rows, tmp_path):
    rows = [dict(small_rows[0], id="s1"), dict(small_rows[0], id="s2", seed=99)]
    run_queue(write_queue(tmp_path / "q.parquet", rows), tmp_path / "out")
    first, second = read_records(tmp_path / "out")
    assert first["sha256"] != second["sha256"]


def test_sample_queue_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the sample's image path is relative to the repository
    summary = run_queue("manifests/prompts.parquet", tmp_path / "out")
    assert summary.failed == 0 and summary.completed == summary.total >= 4
    records = read_records(tmp_path / "out")
    assert any(r["input_reference"] for r in records) and all(r["category"] for r in records)


def test_resume_skips_completed_and_retries_failed(small_rows, tmp_path):
    rows = [small_rows[0], dict(id="bad", prompt="p", size="huge")]
    queue = write_queue(tmp_path / "q.parquet", rows)
    run_queue(queue, tmp_path / "out")
    before = os.stat(tmp_path / "out/records/t2v-a.parquet").st_mtime_ns
    summary = run_queue(queue, tmp_path / "out")
    assert (summary.skipped, summary.completed, summary.failed) == (1, 0, 1)
    assert os.stat(tmp_path / "out/records/t2v-a.parquet").st_mtime_ns == before
    assert [r["id"] for r in read_records(tmp_path / "out")] == ["t2v-a", "bad"]


def test_failed_requests_do_not_stop_the_queue(small_rows, tmp_path):
    rows = [dict(id="nul\0id", prompt="p"), dict(id="noref", prompt="p", input_reference="/no/such.png"),
            small_rows[0]]
    summary = run_queue(write_queue(tmp_path / "q.parquet", rows), tmp_path / "out")
    assert (summary.completed, summary.failed) == (1, 2)
    records = {r["id"]: r for r in read_records(tmp_path / "out")}
    assert records["nul\0id"]["error"] == ("id 'nul\\x00id' is not allowed: ids must contain no NUL character; "
                                          "fix the queue's id column or leave the id empty")
    assert "file not found: /no/such.png" in records["noref"]["error"] and records["noref"]["progress"] == 0
    names = [key_for_id("nul\0id") + ".parquet", "noref.parquet", "t2v-a.parquet"]
    assert sorted(os.listdir(tmp_path / "out/records")) == sorted(names)
    assert sorted(os.listdir(tmp_path / "out/videos")) == ["t2v-a.mp4"]


def test_path_like_ids_keep_their_id_and_name_files_by_key(small_rows, tmp_path):
    rows = [dict(small_rows[0], id="kinetics/train/abc.mp4"), dict(small_rows[0], id="t2v-a")]
    assert run_queue(write_queue(tmp_path / "q.parquet", rows), tmp_path / "out").completed == 2
    key = key_for_id("kinetics/train/abc.mp4")
    records = read_records(tmp_path / "out")
    assert [(r["id"], r["key"]) for r in records] == [("kinetics/train/abc.mp4", key), ("t2v-a", "t2v-a")]
    assert records[0]["url"] == str(tmp_path / "out" / "videos" / f"{key}.mp4")
    assert sorted(os.listdir(tmp_path / "out/videos")) == sorted([f"{key}.mp4", "t2v-a.mp4"])
    assert run_queue(write_queue(tmp_path / "q.parquet", rows), tmp_path / "out").skipped == 2


def test_a_fixed_row_without_id_has_one_record(small_rows, tmp_path):
    """The derived id follows the row's content, so fixing a typo gives the row a new id: the
    failed record of the typo must not stay beside the completed one in records.parquet."""
    typo = {k: v for k, v in small_rows[0].items() if k != "id"} | {"size": "32x3z"}
    run_queue(write_queue(tmp_path / "q.parquet", [typo]), tmp_path / "out")
    (failed,) = read_records(tmp_path / "out")
    assert failed["status"] == "failed" and "size '32x3z' is not WxH" in failed["error"]
    summary = run_queue(write_queue(tmp_path / "q.parquet", [typo | {"size": "32x32"}]), tmp_path / "out")
    (completed,) = read_records(tmp_path / "out")
    assert completed["status"] == "completed" and completed["id"] != failed["id"] and completed["queue_row"] == 0
    # The typo's record stays on disk, counted and named in the summary, never deleted.
    files = sorted([f"{failed['key']}.parquet", f"{completed['key']}.parquet"])
    assert sorted(os.listdir(tmp_path / "out/records")) == files
    assert summary.earlier_records == 1 and "1 earlier records of edited rows stay in records/" in summary.line()


def test_seeds_are_exact_to_2_64_and_inexact_ones_fail(small_rows, tmp_path):
    top = write_queue(tmp_path / "top.parquet", [dict(small_rows[0], seed=2**64 - 1)],
                      schema=pa.schema([*(pa.field(k, pa.string()) for k in ("id", "prompt", "size")),
                                        pa.field("num_frames", pa.int64()), pa.field("num_inference_steps", pa.int64()),
                                        pa.field("seed", pa.uint64())]))
    run_queue(top, tmp_path / "top")
    (record,) = read_records(tmp_path / "top")
    assert record["status"] == "completed" and record["seed"] == 2**64 - 1
    assert pq.read_schema(tmp_path / "top" / "records.parquet").field("seed").type == pa.uint64()
    floats = [dict(small_rows[0], seed=7.0), dict(small_rows[0], id="far", seed=float(2**60))]  # as pandas writes them
    run_queue(write_queue(tmp_path / "floats.parquet", floats), tmp_path / "floats")
    kept, far = read_records(tmp_path / "floats")
    assert (kept["status"], kept["seed"]) == ("completed", 7)
    assert far["error"].startswith(f"seed {float(2**60)!r} is not an exact whole number 0..18446744073709551615")


def test_changed_settings_are_refused(small_rows, tiny_folders, tmp_path):
    queue = write_queue(tmp_path / "q.parquet", small_rows[:1])
    run_queue(queue, tmp_path / "out")
    with pytest.raises(OptionsChanged, match=r"was started with other settings \(models: was .*tiny-random.*; "
                                             r"resume with the same --engine/--model/--dtype/--fit"):
        run_queue(queue, tmp_path / "out", models=(tiny_folders["t2v"],))


def test_columns_that_clash_with_record_fields_are_refused(tmp_path):
    queue = write_queue(tmp_path / "q.parquet", [dict(prompt="p", status="new", sha256="x")])
    with pytest.raises(QueueError, match=r"queue columns \['sha256', 'status'\] would overwrite record fields"):
        run_queue(queue, tmp_path / "out")


def test_bad_model_folder_is_an_error_at_start(tmp_path):
    queue = write_queue(tmp_path / "q.parquet", [dict(prompt="p")])
    with pytest.raises(OptionsError, match=r"is not a diffusers-format folder \(no model_index.json there\)"):
        run_queue(queue, tmp_path / "out", models=(str(tmp_path),))


def test_importing_the_stage_does_not_import_torch():
    code = ("import sys, videoproc.generate, videoproc.generate.command; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_output_on_object_storage(small_rows, tmp_path):
    """An fsspec output (memory:// here, s3:// in production): videos uploaded whole, records, resume."""
    import fsspec

    queue = write_queue(tmp_path / "q.parquet", small_rows[:1])
    run_queue(queue, "memory://gen-bucket/run")
    fs = fsspec.filesystem("memory")
    assert fs.exists("/gen-bucket/run/videos/t2v-a.mp4") and not fs.exists("/gen-bucket/run/.lock")
    table = pq.read_table(fs.open("/gen-bucket/run/records.parquet"))
    assert table.column("url").to_pylist() == ["memory://gen-bucket/run/videos/t2v-a.mp4"]
    assert run_queue(queue, "memory://gen-bucket/run").skipped == 1


def test_records_written_before_keys_and_uint64_seeds_are_consolidated(tmp_path):
    """An output of an earlier version: records without `key`, with int64 seeds."""
    from videoproc.common.storage import locate
    from videoproc.generate import records as rec

    old_schema = pa.schema([f.with_type(pa.int64()) if f.name == "seed" else f
                            for f in rec.RECORD_SCHEMA if f.name != "key"])
    (tmp_path / "records").mkdir()
    old = rec.VideoRecord(id="old", key="old", status="completed", created=1, queue_row=1, seed=5).to_row()
    del old["key"]
    pq.write_table(pa.Table.from_pylist([old], schema=old_schema), tmp_path / "records" / "old.parquet")
    out = locate(str(tmp_path))
    new = rec.VideoRecord(id="a/b", key=key_for_id("a/b"), status="failed", error="x", created=2, queue_row=0,
                          seed=2**64 - 1)
    rec.write_record(out, new.key, new, rec.RECORD_SCHEMA)
    assert rec.consolidate(out, keys=[new.key, "old"], schema=rec.RECORD_SCHEMA) == 0
    table = pq.read_table(tmp_path / "records.parquet")
    assert table.schema.field("seed").type == pa.uint64()
    assert table.select(["id", "key", "seed"]).to_pylist() == [
        {"id": "a/b", "key": key_for_id("a/b"), "seed": 2**64 - 1}, {"id": "old", "key": "old", "seed": 5}]
    assert rec.completed_keys(out) == {"old"}
