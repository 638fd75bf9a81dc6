"""One runner per output folder for the generation stage: the shared output lock (videoproc.common.runlock)
with real `generate` processes, locally and on a Ceph RADOS Gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gen_helpers import REPO, read_records, run_queue, write_queue
from tests.servers import s3
from videoproc.common.errors import OptionsError
from videoproc.common.storage import locate
from videoproc.generate.lock import LOCK_NAME, OutputLocked, output_lock

ROWS = [dict(id=f"r{i}", prompt=f"prompt {i}", size="32x32", num_frames=9, num_inference_steps=4, seed=i)
        for i in range(8)]  # long enough that two runs started together overlap


def start(queue: str, output: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jobs.generate", queue, "--output", output, "--model", "tiny-random",
           "--progress", "off", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def holder(path) -> dict:
    try:
        return json.loads(open(path).read() or "{}")
    except (FileNotFoundError, ValueError):
        return {}


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_lock_is_taken_and_released(tmp_path):
    with output_lock(locate(str(tmp_path / "out"))) as lease:
        assert holder(tmp_path / "out" / LOCK_NAME)["pid"] == os.getpid() == lease.holder["pid"]
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_second_runner_is_refused_naming_the_holder(tmp_path):
    out = locate(str(tmp_path / "out"))
    held = (rf"output {out.url} is locked by generate run pid {os.getpid()} on "
            r"host .* started .*Wait for it to finish or use another --output")
    with output_lock(out), pytest.raises(OutputLocked, match=held), output_lock(out):
        pass
    assert not (tmp_path / "out" / LOCK_NAME).exists()


@pytest.mark.parametrize("content", [
    b"",  # a runner killed between creating the file and writing to it
    json.dumps({"host": os.uname().nodename, "pid": os.getpid(), "since": "earlier"}).encode(),  # PID 1 again
    json.dumps({"host": "some-other-host", "pid": 1, "since": "earlier"}).encode(),
])
def test_a_lock_file_nobody_holds_is_taken(tmp_path, content):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / LOCK_NAME).write_bytes(content)
    with output_lock(locate(str(tmp_path / "out"))) as lease:
        assert holder(tmp_path / "out" / LOCK_NAME)["token"] == lease.token


def test_the_cli_refuses_a_held_output_and_exits_2(tmp_path):
    queue = write_queue(tmp_path / "q.parquet", ROWS[:1])
    with output_lock(locate(str(tmp_path / "out"))):
        proc = start(queue, str(tmp_path / "out"))
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and f"locked by generate run pid {os.getpid()}" in err
    assert not (tmp_path / "out" / "records").exists()


def test_two_concurrent_generate_runs_one_is_refused_each_request_once(tmp_path):
    queue = write_queue(tmp_path / "q.parquet", ROWS)
    out = tmp_path / "out"
    runs = [start(queue, str(out)) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    winner = next(p.pid for p, (code, _, _) in zip(runs, results, strict=True) if code == 0)
    assert f"locked by generate run pid {winner}" in next(err for code, _, err in results if code == 2)
    records = read_records(out)
    assert sorted(r["id"] for r in records) == [r["id"] for r in ROWS]
    assert all(r["status"] == "completed" for r in records)
    assert sorted(os.listdir(out / "videos")) == [f"{r['id']}.mp4" for r in ROWS]
    assert not (out / LOCK_NAME).exists()
    assert len(json.loads((out / "run.json").read_text())["run_id"]) == 32


def test_kill_9_of_the_holder_then_a_rerun_takes_the_lock_at_once(tmp_path):
    queue = write_queue(tmp_path / "q.parquet", ROWS)
    out = tmp_path / "out"
    proc = start(queue, str(out))
    wait_until(lambda: holder(out / LOCK_NAME).get("pid") == proc.pid, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert holder(out / LOCK_NAME)["pid"] == proc.pid  # the file stays, its kernel lock does not
    summary = run_queue(queue, out)
    assert summary.completed + summary.skipped == len(ROWS)
    assert sorted(r["id"] for r in read_records(out)) == [r["id"] for r in ROWS]


def test_lock_lease_is_validated(tmp_path):
    from videoproc.generate import GenerateOptions

    with pytest.raises(OptionsError, match=r"lock_lease must be at least 3 seconds \(got 1\)"):
        GenerateOptions(queue="q", output=str(tmp_path), models=("tiny-random",), lock_lease=1)


@pytest.mark.s3
def test_generate_on_ceph_concurrent_runs_kill_9_and_break_lock(ceph_s3, tmp_path):
    """Two runs at once: one refused. Then kill -9 of a holder: a re-run is refused until the lease
    expires, --break-lock takes it at once, and every request is recorded once."""
    import s3fs

    bucket = "generate-lock"
    s3.make_bucket(ceph_s3, bucket)
    fs = s3fs.S3FileSystem(**s3.storage_options(ceph_s3), skip_instance_cache=True)
    queue, out, key = write_queue(tmp_path / "q.parquet", ROWS), f"s3://{bucket}/out", f"{bucket}/out/{LOCK_NAME}"
    env = s3.env(ceph_s3)
    runs = [start(queue, out, env=env) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    assert "is locked by generate run pid" in next(err for code, _, err in results if code == 2)
    assert not fs.exists(key)

    more = write_queue(tmp_path / "q2.parquet", ROWS + [dict(ROWS[0], id=f"s{i}", seed=20 + i) for i in range(6)])
    proc = start(more, out, "--lock-lease", "4", env=env)
    wait_until(lambda: fs.exists(key) and json.loads(fs.cat_file(key)).get("pid") == proc.pid, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    refused = start(more, out, env=env)
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2 and f"locked by generate run pid {proc.pid}" in err and "--break-lock" in err
    broke = start(more, out, "--break-lock", env=env)
    _, err = broke.communicate(timeout=300)
    assert broke.returncode == 0, err
    assert f"--break-lock: breaking the lock on {out} held by generate run pid {proc.pid}" in err
    ids = sorted(name.removesuffix(".parquet") for name in fs.ls(f"{bucket}/out/records", detail=False))
    assert [i.rsplit("/", 1)[-1] for i in ids] == sorted([r["id"] for r in ROWS] + [f"s{i}" for i in range(6)])
    assert not fs.exists(key)
