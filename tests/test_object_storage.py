"""Manifest, videos and output on object storage: the CLI end to end against a real Ceph RADOS
Gateway (and moto for a fast tier), rows identical to a local run, atomic commits, a real
write failure that leaves its shard for the next run, and one writer per output (the lease)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

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
    assert [n for n in names if n.startswith("data/")] == [
        "data/part-00000.parquet", "data/part-00001.parquet", "data/part-00002.parquet"
    ]
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


# --- one writer per output on object storage (videoproc.common.runlock) ----------------------------------

LOCK_CLIPS = ["carphone_pristine.mp4", "h265_video.mp4", "video_90.mov", "av1_video.mkv"]


def lock_manifest(tmp_path) -> str:
    uris = [os.path.join(REAL_DIR, name) for name in LOCK_CLIPS]
    pq.write_table(pa.table({"id": [f"v{i}" for i in range(len(uris))], "uri": uris}), tmp_path / "m.parquet")
    return str(tmp_path / "m.parquet")


def start_cli(manifest: str, output: str, *extra: str, server: s3.S3Server,
              delay: str | None = None) -> subprocess.Popen:
    # With a delay, through tests.hooked_cli, which pauses after every shard flush.
    entry = ["tests.hooked_cli", "--write-delay", delay, "preprocess"] if delay else ["jobs.preprocess"]
    env = {**os.environ, **s3.env(server)}
    return subprocess.Popen(
        [sys.executable, "-m", *entry, manifest, "--output", output, "--num-frames", "2", "--size", "32x32",
         "--shard-size", "1", "--workers", "1", "--progress", "off", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def remote_holder(server: s3.S3Server, key: str) -> dict:
    fs = filesystem(server)
    try:
        return json.loads(fs.cat_file(key))
    except (FileNotFoundError, ValueError):
        return {}


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def assert_remote_exactly_once(server: s3.S3Server, bucket: str) -> None:
    fs = filesystem(server)
    names = sorted(k.removeprefix(f"{bucket}/out/") for k in fs.find(f"{bucket}/out"))
    parts = [n for n in names if n.startswith("data/")]
    assert parts == [f"data/part-{i:05d}.parquet" for i in range(len(LOCK_CLIPS))], names
    assert sorted(read_output(f"s3://{bucket}/out", server).column("id").to_pylist()) == [f"v{i}" for i in range(4)]
    run_id = json.loads(fs.cat_file(f"{bucket}/out/_videoproc/run.json"))["run_id"]
    markers = [json.loads(fs.cat_file(f"{bucket}/out/{n}")) for n in names if n.startswith("_videoproc/shards/")]
    assert len(markers) == len(LOCK_CLIPS) and {m["run_id"] for m in markers} == {run_id}
    assert ".videoproc.lock" not in names


@pytest.mark.s3
def test_two_concurrent_runs_on_ceph_one_is_refused_and_the_output_is_exactly_once(ceph_s3, tmp_path):
    bucket = "two-runs"
    s3.make_bucket(ceph_s3, bucket)
    manifest = lock_manifest(tmp_path)
    runs = [start_cli(manifest, f"s3://{bucket}/out", server=ceph_s3, delay="0.5") for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    winner = next(p.pid for p, (code, _, _) in zip(runs, results, strict=True) if code == 0)
    refused = next(err for code, _, err in results if code == 2)
    assert f"s3://{bucket}/out is locked by preprocess run pid {winner} on host" in refused
    assert "re-run with --break-lock (only if that run is really gone)" in refused
    assert_remote_exactly_once(ceph_s3, bucket)


@pytest.mark.s3
def test_kill_9_on_ceph_the_lease_holds_until_it_expires_or_is_broken(ceph_s3, tmp_path):
    bucket = "killed-holder"
    s3.make_bucket(ceph_s3, bucket)
    manifest, out, key = lock_manifest(tmp_path), f"s3://{bucket}/out", f"{bucket}/out/.videoproc.lock"

    def kill_holder() -> int:
        proc = start_cli(manifest, out, "--lock-lease", "4", server=ceph_s3, delay="2")
        wait_until(lambda: remote_holder(ceph_s3, key).get("pid") == proc.pid
                   and filesystem(ceph_s3).exists(f"{bucket}/out/_videoproc/run.json"), proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return proc.pid

    dead = kill_holder()
    refused = start_cli(manifest, out, server=ceph_s3)
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2 and f"locked by preprocess run pid {dead}" in err and "its lease expires in" in err
    broke = start_cli(manifest, out, "--break-lock", server=ceph_s3)
    _, err = broke.communicate(timeout=300)
    assert broke.returncode == 0, err
    assert f"--break-lock: breaking the lock on {out} held by preprocess run pid {dead}" in err
    assert_remote_exactly_once(ceph_s3, bucket)

    dead = kill_holder()  # the same again, now waiting for the lease to run out
    time.sleep(4.5)
    later = start_cli(manifest, out, "--overwrite", server=ceph_s3)
    _, err = later.communicate(timeout=300)
    assert later.returncode == 0, err
    assert f"taking over the lock on {out}: its holder, preprocess run pid {dead}" in err
    assert_remote_exactly_once(ceph_s3, bucket)


@pytest.mark.s3
def test_a_run_whose_lock_is_broken_stops_committing_exit_5(ceph_s3, tmp_path):
    bucket = "broken-lock"
    s3.make_bucket(ceph_s3, bucket)
    manifest, out, key = lock_manifest(tmp_path), f"s3://{bucket}/out", f"{bucket}/out/.videoproc.lock"
    old = start_cli(manifest, out, "--lock-lease", "3", server=ceph_s3, delay="1")
    wait_until(lambda: remote_holder(ceph_s3, key).get("pid") == old.pid  # and past its settle check:
               and filesystem(ceph_s3).exists(f"{bucket}/out/_videoproc/run.json"), old)
    new = start_cli(manifest, out, "--break-lock", "--overwrite", server=ceph_s3)
    _, err = new.communicate(timeout=300)
    assert new.returncode == 0, err
    _, err = old.communicate(timeout=300)
    assert old.returncode == 5, err
    assert f"this run lost the lock on {out} (it is now held by preprocess run pid {new.pid}" in err
    assert_remote_exactly_once(ceph_s3, bucket)


@pytest.mark.s3
def test_overwrite_refuses_a_foreign_prefix_on_ceph(ceph_s3, tmp_path):
    bucket = "foreign"
    s3.make_bucket(ceph_s3, bucket)
    filesystem(ceph_s3).pipe_file(f"{bucket}/out/report.csv", b"a,b\n")
    proc = start_cli(lock_manifest(tmp_path), f"s3://{bucket}/out", "--overwrite", server=ceph_s3)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "holds files (report.csv) but no _videoproc/run.json" in err
    assert filesystem(ceph_s3).find(f"{bucket}/out") == [f"{bucket}/out/report.csv"]


def check_lease_rules(server: s3.S3Server, bucket: str) -> None:
    """The lock module alone: conditional create, refusal, break, loss noticed, expiry, two takers."""
    import io
    import threading

    from videoproc.common.runlock import LockLost, OutputLocked, hold_output
    from videoproc.common.storage import locate

    s3.make_bucket(server, bucket)
    out = locate(f"s3://{bucket}/out", storage_options=s3.storage_options(server))
    with hold_output(out, stage="generate", lease_s=3) as first:
        held = r"locked by generate run pid \d+ on host .*lease expires in [0-9] s"
        with pytest.raises(OutputLocked, match=held), hold_output(out, stage="generate"):
            pass
        log = io.StringIO()
        with hold_output(out, stage="generate", break_lock=True, log=log):
            time.sleep(1.5)  # past first's next renewal, which finds the object is not its own
            with pytest.raises(LockLost, match=r"lost the lock on .*"
                                               r"(it is now held by generate run|its lock object was deleted)"):
                first.check()
        assert "--break-lock: breaking the lock" in log.getvalue()
    assert not filesystem(server).exists(f"{bucket}/out/.videoproc.lock")

    stale = {"host": "gone", "pid": 7, "token": "dead", "since": "earlier", "expires": time.time() - 1}
    filesystem(server).pipe_file(f"{bucket}/out/.videoproc.lock", json.dumps(stale).encode())
    won, barrier = [], threading.Barrier(2)

    def take() -> None:
        barrier.wait()
        try:
            with hold_output(out, stage="generate", log=io.StringIO()):
                won.append(True)
                time.sleep(3)
        except OutputLocked:
            won.append(False)

    takers = [threading.Thread(target=take) for _ in range(2)]
    for t in takers:
        t.start()
    for t in takers:
        t.join()
    assert sorted(won) == [False, True]


def test_lease_rules_on_moto(moto_s3):
    check_lease_rules(moto_s3, "lease-rules")


@pytest.mark.s3
def test_lease_rules_on_ceph(ceph_s3):
    check_lease_rules(ceph_s3, "lease-rules")
