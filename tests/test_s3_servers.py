"""The S3 test servers do what the pipeline needs: multipart writes, ranged reads, Parquet I/O
through fsspec, and listings that skip the zero-byte folder markers pyarrow leaves behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
from pyarrow.fs import FSSpecHandler, PyFileSystem

from tests.servers import s3

BIG_OBJECT_BYTES = 20 * 1024 * 1024
# Below s3fs's default 50 MiB block size a 20 MB write would be one PUT; 5 MiB (the S3 minimum
# part size) makes it a four-part multipart upload.
MULTIPART_BLOCK_BYTES = 5 * 1024 * 1024


@pytest.fixture(
    params=[pytest.param("moto_s3", id="moto"), pytest.param("ceph_s3", id="ceph", marks=pytest.mark.s3)]
)
def server(request: pytest.FixtureRequest) -> s3.S3Server:
    return request.getfixturevalue(request.param)


@pytest.fixture
def bucket(server: s3.S3Server) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.make_bucket(server, name)
    return name


@pytest.fixture
def fs(server: s3.S3Server) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(**s3.storage_options(server), skip_instance_cache=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_bucket_is_created_and_listed(fs: s3fs.S3FileSystem, bucket: str) -> None:
    assert bucket in {entry.rstrip("/") for entry in fs.ls("", refresh=True)}
    assert fs.ls(bucket, refresh=True) == []


def test_multipart_write_reads_back_identical(fs: s3fs.S3FileSystem, bucket: str) -> None:
    data = os.urandom(BIG_OBJECT_BYTES)
    with fs.open(f"{bucket}/big.bin", "wb", block_size=MULTIPART_BLOCK_BYTES) as file:
        # s3fs sends one oversized write as a single part; small writes fill one block per part.
        for offset in range(0, len(data), 1024 * 1024):
            file.write(data[offset : offset + 1024 * 1024])
    # A multipart upload's ETag is "<md5 of part md5s>-<part count>"; a plain PUT's has no dash.
    assert fs.info(f"{bucket}/big.bin")["ETag"].strip('"').endswith("-4")
    assert fs.size(f"{bucket}/big.bin") == BIG_OBJECT_BYTES
    assert sha256(fs.cat_file(f"{bucket}/big.bin")) == sha256(data)


def test_ranged_read_returns_the_requested_bytes(fs: s3fs.S3FileSystem, bucket: str) -> None:
    data = os.urandom(1024 * 1024)
    fs.pipe_file(f"{bucket}/ranged.bin", data)
    assert fs.cat_file(f"{bucket}/ranged.bin", start=1000, end=5000) == data[1000:5000]
    with fs.open(f"{bucket}/ranged.bin", "rb", block_size=64 * 1024) as file:
        file.seek(700_000)
        assert file.read(10_000) == data[700_000:710_000]


def test_parquet_round_trip_through_fsspec(fs: s3fs.S3FileSystem, bucket: str) -> None:
    table = pa.table({"video_id": [f"v{i}" for i in range(1000)], "frame": pa.array(range(1000), pa.int32())})
    filesystem = PyFileSystem(FSSpecHandler(fs))
    pq.write_table(table, f"{bucket}/shards/shard-00000.parquet", filesystem=filesystem)
    assert pq.read_table(f"{bucket}/shards/shard-00000.parquet", filesystem=filesystem).equals(table)


def test_listing_skips_zero_byte_markers(fs: s3fs.S3FileSystem, bucket: str) -> None:
    fs.pipe_file(f"{bucket}/out/", b"")  # the kind of folder marker pyarrow's create_dir leaves
    fs.pipe_file(f"{bucket}/out/sub/", b"")
    fs.pipe_file(f"{bucket}/out/a.parquet", b"PAR1")
    fs.pipe_file(f"{bucket}/out/sub/b.parquet", b"PAR1")
    found = fs.find(f"{bucket}/out", detail=True)
    assert sorted(path for path, info in found.items() if info["size"] > 0) == [
        f"{bucket}/out/a.parquet",
        f"{bucket}/out/sub/b.parquet",
    ]


# The CLI runs in a subprocess configured only by env(): fsspec's s3fs must find the endpoint
# there, and pyarrow's own S3 client (which takes the endpoint only as an argument) must stop
# sending the aws-chunked uploads that Ceph rejects.
_SUBPROCESS_PROBE = """
import os, sys
import fsspec, pyarrow as pa, pyarrow.fs as pafs, pyarrow.parquet as pq
bucket = sys.argv[1]
table = pa.table({"x": list(range(100_000))})
with fsspec.open(f"s3://{bucket}/fsspec/t.parquet", "wb") as file:
    pq.write_table(table, file)
with fsspec.open(f"s3://{bucket}/fsspec/t.parquet", "rb") as file:
    assert pq.read_table(file).equals(table)
scheme, host = os.environ["AWS_ENDPOINT_URL"].split("://")
native = pafs.S3FileSystem(endpoint_override=host, scheme=scheme)
native.create_dir(f"{bucket}/native")
pq.write_table(table, f"{bucket}/native/t.parquet", filesystem=native)
assert pq.read_table(f"{bucket}/native/t.parquet", filesystem=native).equals(table)
"""


def test_env_points_a_subprocess_at_the_server(
    server: s3.S3Server, fs: s3fs.S3FileSystem, bucket: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_PROBE, bucket],
        env={**os.environ, **s3.env(server)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    sizes = {path: info["size"] for path, info in fs.find(bucket, detail=True).items()}
    assert sizes[f"{bucket}/fsspec/t.parquet"] > 0
    assert sizes[f"{bucket}/native/t.parquet"] > 0
