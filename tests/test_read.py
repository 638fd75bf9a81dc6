"""Reading preprocess outputs: the torch dataset in a training loop, its split across DataLoader
workers and ranks, shuffling, the numpy reader, and round trips through pyarrow, Polars and Ray."""

from __future__ import annotations

import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.runs import NUM_FRAMES, SIZE, stored_rows
from tests.servers import s3
from videoproc.preprocess.write import FORMAT_VERSION, METADATA_KEY
from videoproc.read import FrameDataset, ReadError, iter_rows, list_units


def ok_ids(output: str) -> set[str]:
    return set(stored_rows(output))


def loader_ids(dataset, workers: int) -> list[str]:
    from torch.utils.data import DataLoader

    return [row["id"] for row in DataLoader(dataset, batch_size=None, num_workers=workers)]


def test_the_run_has_three_shards_of_one_row_group_each(real_run):
    units = list_units(real_run)
    assert [os.path.basename(u.url) for u in units] == [f"part-0000{i}.parquet" for i in range(3)]
    assert [u.num_rows for u in units] == [3, 3, 2]
    assert len(ok_ids(real_run)) == 7


def test_dataloader_with_two_workers_yields_every_ok_row_once_with_the_stored_frames(real_run):
    import torch
    from torch.utils.data import DataLoader

    stored = stored_rows(real_run)
    seen = collections.Counter()
    for row in DataLoader(FrameDataset(real_run), batch_size=None, num_workers=2):
        seen[row["id"]] += 1
        expected = stored[row["id"]]
        assert row["frames"].dtype == torch.uint8 and row["frames"].is_contiguous()
        assert torch.equal(row["frames"], torch.from_numpy(expected["frames"].copy()))
        assert row["timestamps"].tolist() == expected["timestamps"]
        assert row["frame_indices"].tolist() == expected["frame_indices"]
        assert (row["caption"], row["position"]) == (expected["caption"], expected["position"])
    assert seen == {row_id: 1 for row_id in stored}


def test_batches_collate_into_one_tensor(real_run):
    from torch.utils.data import DataLoader

    batches = list(DataLoader(FrameDataset(real_run), batch_size=2, num_workers=0))
    assert tuple(batches[0]["frames"].shape) == (2, NUM_FRAMES, SIZE[1], SIZE[0], 3)
    assert sum(len(b["id"]) for b in batches) == 7


@pytest.mark.parametrize("workers", [0, 2])
def test_two_ranks_split_the_rows_between_them(real_run, workers):
    ranks = [loader_ids(FrameDataset(real_run, rank=r, world_size=2), workers) for r in range(2)]
    assert all(ranks), "with 3 row groups both ranks get rows"
    assert set(ranks[0]).isdisjoint(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == sorted(ok_ids(real_run))


def test_shuffled_ranks_still_partition_the_rows(real_run):
    ranks = [[r["id"] for r in FrameDataset(real_run, rank=k, world_size=2, shuffle=True, seed=3)] for k in range(2)]
    assert set(ranks[0]).isdisjoint(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == sorted(ok_ids(real_run))


def test_shuffle_is_deterministic_for_a_seed_and_changes_with_the_epoch(real_run):
    def order(seed: int, epoch: int) -> list[str]:
        dataset = FrameDataset(real_run, shuffle=True, seed=seed, buffer_size=4)
        dataset.set_epoch(epoch)
        return [row["id"] for row in dataset]

    first = order(5, 0)
    assert order(5, 0) == first
    assert sorted(first) == sorted(ok_ids(real_run))
    plain = [row["id"] for row in FrameDataset(real_run)]
    orders = {tuple(order(5, epoch)) for epoch in range(6)} | {tuple(order(seed, 0)) for seed in range(6)}
    assert len(orders - {tuple(plain)}) > 1, "seeds and epochs give different orders"


def test_tchw_layout_is_a_contiguous_transpose_of_the_stored_frames(real_run):
    import torch

    stored = stored_rows(real_run)
    rows = list(FrameDataset(real_run, layout="TCHW"))
    assert len(rows) == 7
    for row in rows:
        assert tuple(row["frames"].shape) == (NUM_FRAMES, 3, SIZE[1], SIZE[0]) and row["frames"].is_contiguous()
        expected = torch.from_numpy(stored[row["id"]]["frames"].transpose(0, 3, 1, 2).copy())
        assert torch.equal(row["frames"], expected)


def test_columns_adds_fixed_output_columns(real_run):
    row = next(iter(FrameDataset(real_run, columns=["uri", "source_fps"])))
    assert row["uri"].endswith("carphone_pristine.mp4") and row["source_fps"] > 0
    assert "status" not in row and "shape" not in row


def test_only_committed_shards_are_read(real_run, tmp_path):
    copy = str(tmp_path / "out")
    shutil.copytree(real_run, copy)
    os.remove(os.path.join(copy, "_videoproc", "shards", "part-00001.json"))
    with pytest.warns(UserWarning, match=r"1 of 3 shards are not committed yet and are skipped; re-run"):
        ids = [row["id"] for row in FrameDataset(copy)]
    kept = {r["id"] for s in (0, 2)
            for r in pq.read_table(os.path.join(copy, "data", f"part-0000{s}.parquet")).to_pylist()
            if r["status"] == "ok"}
    assert sorted(ids) == sorted(kept) and len(ids) == 5


def _rewrite_metadata(path: str, metadata: dict) -> None:
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_another_format_version_is_refused(real_run, tmp_path):
    copy = str(tmp_path / "out")
    shutil.copytree(real_run, copy)
    shard = os.path.join(copy, "data", "part-00002.parquet")
    _rewrite_metadata(shard, {METADATA_KEY: json.dumps({"format_version": "99"}).encode()})
    with pytest.raises(ReadError, match=r"part-00002.parquet has format version 99, "
                                        r"but this reader reads format versions 1, 2 "
                                        rf"\(it writes {FORMAT_VERSION}\); read it with"):
        FrameDataset(copy)
    _rewrite_metadata(shard, {})
    with pytest.raises(ReadError, match=r"has no 'videoproc' key in its Parquet metadata, "
                                        r"so it is not a videoproc shard"):
        list(iter_rows(copy))


def test_the_stored_metadata_key_names_the_format_version(real_run):
    schema = pq.read_schema(os.path.join(real_run, "data", "part-00000.parquet"))
    assert json.loads(schema.metadata[METADATA_KEY])["format_version"] == FORMAT_VERSION


def test_a_folder_without_a_run_is_refused(tmp_path):
    with pytest.raises(ReadError, match=r"no videoproc run found at .* \(no _videoproc/run.json\); "
                                        r"pass the OUTPUT folder"):
        FrameDataset(str(tmp_path))
    with pytest.raises(ReadError, match=r"no outputs given"):
        list(iter_rows([]))


@pytest.mark.parametrize("kwargs, message", [
    ({"layout": "HWC"}, r"layout must be one of \['THWC', 'TCHW'\] \(got 'HWC'\)"),
    ({"rank": 1}, r"rank and world_size go together \(got rank=1, world_size=None\)"),
    ({"rank": 2, "world_size": 2}, r"rank must be in \[0, world_size\) \(got rank=2, world_size=2\)"),
    ({"buffer_size": 0}, r"buffer_size must be at least 1 row \(got 0\)"),
    ({"columns": ["frames_decoded", "nope"]}, r"columns \['nope'\] are not output columns; choose from"),
])
def test_bad_options_are_refused_with_the_value_and_the_rule(real_run, kwargs, message):
    with pytest.raises(ReadError, match=message):
        FrameDataset(real_run, **kwargs)


def test_the_numpy_reader_yields_read_only_views_or_copies(real_run):
    stored = stored_rows(real_run)
    rows = list(iter_rows(real_run))
    assert [r["id"] for r in rows] == list(stored), "in output order"
    for row in rows:
        np.testing.assert_array_equal(row["frames"], stored[row["id"]]["frames"])
        assert not row["frames"].flags.writeable and row["frames"].base is not None
        assert row["timestamps"].dtype == np.float64 and list(row["timestamps"]) == stored[row["id"]]["timestamps"]
    copies = list(iter_rows(real_run, layout="TCHW", copy=True))
    for row in copies:
        assert row["frames"].flags.writeable and row["frames"].flags.c_contiguous
        np.testing.assert_array_equal(row["frames"], stored[row["id"]]["frames"].transpose(0, 3, 1, 2))


def test_the_reader_imports_and_reads_without_torch(real_run):
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import videoproc.read as r\n"
        f"print(sum(1 for _ in r.iter_rows({real_run!r})))\n"
        "try:\n    r.FrameDataset\nexcept ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    count, message = result.stdout.splitlines()[:2]
    assert count == "7"
    assert "needs torch: pip install 'videoproc[read]'" in message


def test_an_output_on_object_storage_reads_through_fsspec(real_run, moto_s3):  # noqa: F811
    import s3fs
    from torch.utils.data import DataLoader

    bucket = f"read-{uuid.uuid4().hex[:12]}"
    s3.make_bucket(moto_s3, bucket)
    options = s3.storage_options(moto_s3)
    s3fs.S3FileSystem(**options, skip_instance_cache=True).put(real_run, f"{bucket}/run", recursive=True)
    dataset = FrameDataset(f"s3://{bucket}/run", storage_options=options)
    assert all(u.url.startswith(f"s3://{bucket}/run/data/part-") for u in dataset.units)
    stored = stored_rows(real_run)
    rows = list(DataLoader(dataset, batch_size=None, num_workers=2))
    assert sorted(r["id"] for r in rows) == sorted(stored)
    for row in rows:
        np.testing.assert_array_equal(row["frames"].numpy(), stored[row["id"]]["frames"])


# Interop: the snippets of docs/reading.md, each checked against the stored frames.

def test_pyarrow_round_trip(real_run):
    # Committed shards only: those with a completion marker.
    markers = sorted(os.listdir(os.path.join(real_run, "_videoproc", "shards")))
    files = [os.path.join(real_run, "data", name.replace(".json", ".parquet")) for name in markers]
    table = pq.read_table(files, filters=[("status", "=", "ok")])
    stored = stored_rows(real_run)
    assert table.num_rows == 7
    for row in table.to_pylist():
        frames = np.frombuffer(row["frames"], np.uint8).reshape(row["shape"])
        np.testing.assert_array_equal(frames, stored[row["id"]]["frames"])


def test_polars_round_trip(real_run):
    import polars as pl

    frame = pl.read_parquet(os.path.join(real_run, "data", "*.parquet")).filter(pl.col("status") == "ok")
    stored = stored_rows(real_run)
    assert frame.height == 7
    for row in frame.select("id", "frames", "shape", "timestamps").iter_rows(named=True):
        frames = np.frombuffer(row["frames"], np.uint8).reshape(row["shape"])
        np.testing.assert_array_equal(frames, stored[row["id"]]["frames"])
        assert row["timestamps"] == stored[row["id"]]["timestamps"]


@pytest.fixture
def local_ray(tmp_path, monkeypatch):
    """A one-CPU local Ray that never reaches beyond this machine; shut down afterwards."""
    ray = pytest.importorskip("ray")
    home = tmp_path / "home"
    home.mkdir()
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    for name, value in {"HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}.items():
        monkeypatch.setenv(name, value)
    # A short session folder: Ray's Unix socket paths are capped near 107 bytes.
    temp_dir = f"/tmp/vpr-{uuid.uuid4().hex[:8]}"
    ray.init(num_cpus=1, include_dashboard=False, object_store_memory=200_000_000, _temp_dir=temp_dir)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.ray
def test_ray_data_round_trip(real_run, local_ray):
    import ray.data
    from ray.data.expressions import col

    files = sorted(glob.glob(os.path.join(real_run, "data", "part-*.parquet")))
    dataset = ray.data.read_parquet(files).filter(expr=col("status") == "ok")
    stored = stored_rows(real_run)
    rows = dataset.take_all()
    assert len(rows) == 7
    for row in rows:
        frames = np.frombuffer(row["frames"], np.uint8).reshape(row["shape"])
        np.testing.assert_array_equal(frames, stored[row["id"]]["frames"])
