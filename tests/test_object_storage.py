"""Manifest, videos and output on object storage: the CLI end to end against a real Ceph RADOS
Gateway (and moto for a fast tier), rows identical to a local run, atomic commits, and a real
write failure that leaves its shard for the next run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REAL_DIR, ROOT
from tests.servers import s3

CLIPS = ["carphone_pristine.mp4", "h265_video.mp4", "video_90.mov", "av1_video.mkv", "nasa_13013.mp4"]


def run_cli(*args: str, server: s3.S3Server) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.preprocess", *args, "--num-frames", "4", "--size", "48x32",
         "--shard-size", "2", "--workers", "2", "--progress", "off"],
        cwd=ROOT, env={**os.environ, **s3.env(server)}, capture_output=True, text=True, timeout=600,
    )


def filesystem(server: s3.S3Server):
    import s3fs

    return s3fs.S3FileSystem(**s3.storage_options(server), skip_instance_cache=True)


def upload_inputs(server: s3.S3Server, bucket: str) -> str:
    """Videos on s3:// and local paths mixed in one manifest, itself on s3://."""
    s3.make_bucket(server, bucket)
    fs = filesystem(server)
    uris = []
    for i, name in enumerate(CLIPS):
        local = os.path.join(REAL_DIR, name)
        if i % 2 == 0:
            fs.put_file(local, f"{bucket}/videos/{name}")
            uris.append(f"s3://{bucket}/videos/{name}")
        else:
            uris.append(local)
    table = pa.table({"id": [f"clip-{i}" for i in range(len(uris))], "uri": uris, "label": list(range(len(uris)))})
    with fs.open(f"{bucket}/manifests/m.parquet", "wb") as f:
        pq.write_table(table, f)
    return f"s3://{bucket}/manifests/m.parquet"


def read_output(url: str, server: s3.S3Server) -> pa.Table:
    fs = filesystem(server) if url.startswith("s3://") else None
    if fs is None:
        return pq.read_table(os.path.join(url, "data"))
    return pq.read_table(url.removeprefix("s3://") + "/data", filesystem=fs)


def check_end_to_end(server: s3.S3Server, bucket: str, tmp_path) -> None:
    manifest = upload_inputs(server, bucket)
    remote = run_cli(manifest, "--output", f"s3://{bucket}/out", server=server)
    assert remote.returncode == 0, remote.stderr
    local = run_cli(manifest, "--output", str(tmp_path / "local"), server=server)
    assert local.returncode == 0, local.stderr
    got, want = read_output(f"s3://{bucket}/out", server), read_output(str(tmp_path / "local"), server)
    assert got.num_rows == len(CLIPS)
    assert got.column("frames").equals(want.column("frames"))
    assert got.column("id").to_pylist() == want.column("id").to_pylist()
    assert got.column("label").to_pylist() == list(range(len(CLIPS)))
    keys = filesystem(server).find(f"{bucket}/out")
    names = sorted(k.removeprefix(f"{bucket}/out/") for k in keys)
    assert [n for n in names if n.startswith("data/")] == ["data/part-00000.parquet", "data/part-00001.parquet", "data/part-00002.parquet"]
    assert "_videoproc/summary.json" in names and not any(".tmp" in n for n in names)
    status = subprocess.run([os.path.join(os.path.dirname(sys.executable), "videoproc"), "status", f"s3://{bucket}/out"],
                            env={**os.environ, **s3.env(server)}, capture_output=True, text=True)
    assert status.returncode == 0 and "3/3 committed" in status.stdout, status.stdout + status.stderr


def test_object_storage_end_to_end_on_moto(moto_s3, tmp_path):
    check_end_to_end(moto_s3, "fast-tier", tmp_path)


@pytest.mark.s3
def test_object_storage_end_to_end_on_ceph(ceph_s3, tmp_path):
    check_end_to_end(ceph_s3, "frames", tmp_path)


@pytest.mark.s3
def test_write_failure_on_object_storage_leaves_shard_for_next_run(ceph_s3, tmp_path):
    import boto3

    bucket = "flaky"
    manifest = upload_inputs(ceph_s3, bucket)
    client = boto3.client("s3", endpoint_url=ceph_s3.endpoint_url, aws_access_key_id=ceph_s3.access_key,
                          aws_secret_access_key=ceph_s3.secret_key, region_name="us-east-1")
    deny = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/out/data/part-00001.parquet"}]}
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny))
    failed = run_cli(manifest, "--output", f"s3://{bucket}/out", server=ceph_s3)
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "1 pending" in failed.stdout and "shard error: writing" in failed.stdout
    client.delete_bucket_policy(Bucket=bucket)
    again = run_cli(manifest, "--output", f"s3://{bucket}/out", server=ceph_s3)
    assert again.returncode == 0, again.stdout + again.stderr
    rows = read_output(f"s3://{bucket}/out", ceph_s3)
    assert sorted(rows.column("id").to_pylist()) == [f"clip-{i}" for i in range(len(CLIPS))]
