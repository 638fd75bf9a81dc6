"""One writer per output: two real CLI runs on one local output, kill -9 of the lock holder, the lock
module's own rules, run ids in markers, and what --overwrite may delete. The object-storage
counterparts are in test_object_storage.py."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REAL_DIR, ROOT
from videoproc.common.errors import OptionsError, ResumeError
from videoproc.common.runlock import LOCK_NAME, LockLost, OutputLocked, hold_output
from videoproc.common.storage import locate
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.preprocess.runstate import RunState, Shard
from videoproc.video.options import VideoOptions

CLIPS = ["carphone_pristine.mp4", "h265_video.mp4", "video_90.mov", "av1_video.mkv"]
ROWS = 8


def write_manifest(path, rows: int = ROWS) -> str:
    uris = [os.path.join(REAL_DIR, CLIPS[i % len(CLIPS)]) for i in range(rows)]
    pq.write_table(pa.table({"id": [f"v{i:03d}" for i in range(rows)], "uri": uris}), path)
    return str(path)


def cli_args(manifest: str, output, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jobs.preprocess", manifest, "--output", str(output), "--num-frames", "2",
            "--size", "32x32", "--shard-size", "2", "--workers", "1", "--progress", "off", *extra]


def start(args: list[str], *, write_delay: str | None = None) -> subprocess.Popen:
    """Run the CLI; with write_delay, through tests.hooked_cli, which pauses after every shard flush."""
    if write_delay is not None:
        args = delayed(args, write_delay)
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def delayed(args: list[str], seconds: str) -> list[str]:
    """`python -m jobs.preprocess ...` as `python -m tests.hooked_cli --write-delay S preprocess ...`."""
    at = args.index("jobs.preprocess")
    return [*args[:at], "tests.hooked_cli", "--write-delay", seconds, "preprocess", *args[at + 1:]]


def options(manifest, output, **run) -> PreprocessOptions:
    run = {"workers": 1, "shard_size": 2, "progress": "off", **run}
    return PreprocessOptions(manifest=manifest, output=str(output), video=VideoOptions(num_frames=2, size=(32, 32)),
                             run=RunOptions(**run))


def assert_exactly_once(output, rows: int = ROWS) -> None:
    names = sorted(os.listdir(os.path.join(output, "data")))
    assert names == [f"part-{i:05d}.parquet" for i in range(rows // 2)], names
    ids = pq.read_table(os.path.join(output, "data")).column("id").to_pylist()
    assert sorted(ids) == [f"v{i:03d}" for i in range(rows)]
    run_id = json.loads(Path(output, "_videoproc", "run.json").read_text())["run_id"]
    markers = os.listdir(os.path.join(output, "_videoproc", "shards"))
    assert len(markers) == rows // 2
    for name in markers:
        assert json.loads(Path(output, "_videoproc", "shards", name).read_text())["run_id"] == run_id


def wait_for(predicate, *, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"run ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def lock_holder(output) -> dict:
    try:
        with open(os.path.join(output, LOCK_NAME)) as f:
            return json.loads(f.read() or "{}")
    except (FileNotFoundError, ValueError):
        return {}


def test_two_concurrent_runs_one_is_refused_at_once_and_the_output_is_exactly_once(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet")
    out = tmp_path / "out"
    # The delay keeps the winner busy past the loser's start.
    runs = [start(cli_args(manifest, out), write_delay="0.5") for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    holder = next(p.pid for p, (code, _, _) in zip(runs, results, strict=True) if code == 0)
    assert f"is locked by preprocess run pid {holder} on host " in refused
    assert "Wait for it to finish or use another --output" in refused
    assert_exactly_once(out)
    assert not (out / LOCK_NAME).exists()


def test_runs_with_different_shard_sizes_cannot_both_pass_the_plan_check(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet")
    out = tmp_path / "out"
    first = start(cli_args(manifest, out), write_delay="0.5")
    wait_for(lambda: lock_holder(out).get("pid") == first.pid, proc=first)
    args = cli_args(manifest, out)
    second = start(args[: args.index("--shard-size") + 1] + ["4"] + args[args.index("--shard-size") + 2:])
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and f"locked by preprocess run pid {first.pid}" in err, (second.returncode, err)
    assert first.wait(timeout=300) == 0, first.communicate()
    assert_exactly_once(out)


def test_kill_9_of_the_holder_then_a_rerun_takes_the_lock_at_once(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet")
    out = tmp_path / "out"
    proc = start(cli_args(manifest, out), write_delay="1")
    wait_for(lambda: (out / "_videoproc" / "run.json").exists() and lock_holder(out).get("pid") == proc.pid, proc=proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lock_holder(out)["pid"] == proc.pid  # the file stays; the kernel lock went with the process
    started = time.monotonic()
    again = start(cli_args(manifest, out))
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "locked" not in err and time.monotonic() - started < 120
    assert_exactly_once(out)


@pytest.mark.parametrize("content", [b"", b"{half", json.dumps({"pid": 1, "host": "x"}).encode()])
def test_a_left_over_lock_file_without_a_live_holder_is_taken(tmp_path, content):
    """Empty (killed between create and write), garbled, or naming pid 1 (this process after a
    container restart): only the kernel lock counts."""
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_bytes(content)
    with hold_output(locate(str(out)), stage="preprocess") as lease:
        assert lock_holder(out)["token"] == lease.token and lease.holder["pid"] == os.getpid()
    assert not (out / LOCK_NAME).exists()


def test_a_second_holder_in_the_same_process_is_refused_with_the_holder_named(tmp_path):
    out = locate(str(tmp_path / "out"))
    with hold_output(out, stage="preprocess") as lease:
        held = (rf"output {out.url} is locked by preprocess run pid {os.getpid()} "
                rf"on host .* started {lease.holder['since']}.*stop that process")
        with pytest.raises(OutputLocked, match=held), hold_output(out, stage="generate", break_lock=True):
            pass
        lease.check()


def test_a_removed_lock_file_is_a_lost_lock(tmp_path):
    out = locate(str(tmp_path / "out"))
    with hold_output(out, stage="preprocess") as lease:
        os.remove(tmp_path / "out" / LOCK_NAME)
        with pytest.raises(LockLost, match=r"lost the lock on .*was removed or replaced.*stopped committing"):
            lease.check()


def test_break_lock_on_a_free_local_lock_says_there_was_nothing_to_break(tmp_path):
    log = io.StringIO()
    with hold_output(locate(str(tmp_path / "out")), stage="preprocess", break_lock=True, log=log):
        pass
    assert "is a local lock, which dies with its holder; it was free, nothing was broken" in log.getvalue()


def test_lock_lease_is_validated():
    with pytest.raises(OptionsError, match=r"lock_lease must be at least 3 seconds \(got 0.5\).*--lock-lease 60"):
        RunOptions(lock_lease=0.5)


def test_a_job_file_cannot_break_locks(tmp_path):
    from videoproc.preprocess.config import load_config

    (tmp_path / "job.toml").write_text("break-lock = true\nlock-lease = 30\n")
    with pytest.raises(OptionsError, match=r"job file .*job.toml sets break_lock.*pass --break-lock by hand"):
        load_config(str(tmp_path / "job.toml"))
    (tmp_path / "job.toml").write_text("lock-lease = 30\n")
    assert load_config(str(tmp_path / "job.toml")) == {"lock_lease": 30}


def test_markers_of_another_run_id_never_count(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", rows=4)
    out = tmp_path / "out"
    assert run_preprocess(options(manifest, out)).exit_code == 0
    marker = out / "_videoproc" / "shards" / "part-00001.json"
    stale = json.loads(marker.read_text()) | {"run_id": "an-older-run"}
    marker.write_text(json.dumps(stale))  # as if a run whose lock was broken committed it late
    state = RunState(locate(str(out)))
    assert sorted(state.committed()) == ["part-00000"]
    report = run_preprocess(options(manifest, out))
    assert report.summary["resumed"] and report.summary["shards_committed"] == 2
    assert json.loads(marker.read_text())["run_id"] == state.run_id == report.summary["run_id"]


def test_run_id_is_kept_on_resume_and_renewed_by_overwrite(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", rows=4)
    out = tmp_path / "out"
    first = run_preprocess(options(manifest, out)).summary["run_id"]
    assert run_preprocess(options(manifest, out)).summary["run_id"] == first
    assert run_preprocess(options(manifest, out, overwrite=True)).summary["run_id"] not in (first, None)


def test_overwrite_refuses_a_folder_that_is_not_a_videoproc_output(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", rows=2)
    out = tmp_path / "precious"
    (out / "data").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / "data" / "part-00000.parquet").write_text("not ours")
    with pytest.raises(ResumeError, match=rf"--overwrite refuses {out}: it holds files \(data, notes.txt\) but no "
                                          r"_videoproc/run.json.*Choose a new or empty --output"):
        run_preprocess(options(manifest, out, overwrite=True))
    assert sorted(os.listdir(out)) == ["data", "notes.txt"]  # the lock file went with the refused run
    assert (out / "data" / "part-00000.parquet").read_text() == "not ours"


def test_overwrite_through_the_cli_refuses_a_foreign_folder(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", rows=2)
    out = tmp_path / "precious"
    out.mkdir()
    (out / "photo.jpg").write_bytes(b"\xff\xd8")
    result = subprocess.run(cli_args(manifest, out, "--overwrite"), cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "is not a videoproc output" in result.stderr
    assert os.listdir(out) == ["photo.jpg"]


def test_overwrite_deletes_only_videoproc_files(tmp_path, monkeypatch):
    manifest = write_manifest(tmp_path / "m.parquet", rows=4)
    out = tmp_path / "out"
    run_preprocess(options(manifest, out))
    (out / "README.txt").write_text("the owner's notes")
    (out / "data" / "extra.csv").write_text("the owner's table")
    (out / "data" / ".part-00009.parquet.abc.tmp").write_bytes(b"left by a killed run")
    seen = {}
    real_wipe = RunState.wipe

    def wipe_and_look(state):
        real_wipe(state)
        seen["top"], seen["data"] = sorted(os.listdir(out)), sorted(os.listdir(out / "data"))

    monkeypatch.setattr(RunState, "wipe", wipe_and_look)  # to look between the wipe and the new run
    report = run_preprocess(options(manifest, out, overwrite=True))
    assert seen == {"top": [LOCK_NAME, "README.txt", "data"], "data": ["extra.csv"]}
    assert report.exit_code == 0 and (out / "README.txt").read_text() == "the owner's notes"
    assert sorted(os.listdir(out / "data")) == ["extra.csv", "part-00000.parquet", "part-00001.parquet"]


def test_overwrite_of_an_empty_or_missing_folder_is_fine(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", rows=2)
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "missing"):
        assert run_preprocess(options(manifest, out, overwrite=True)).exit_code == 0


def test_status_counts_only_markers_of_the_current_run(tmp_path):
    from videoproc.preprocess.status import read_status

    manifest = write_manifest(tmp_path / "m.parquet", rows=4)
    out = tmp_path / "out"
    run_preprocess(options(manifest, out))
    state = RunState(locate(str(out)))
    state._run_id = "another-run"
    state.commit(Shard(index=1, start=2, stop=4), {"shard": "part-00001", "rows": 2, "ok": 2, "failed": 0})
    assert read_status(str(out))["summary"]["shards_committed"] == 1
