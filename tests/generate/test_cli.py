"""The `generate` command end to end, including a kill -9 in the middle of a queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from gen_helpers import REPO, read_records, run_queue, write_queue
from videoproc.generate.command import generate
from videoproc.generate.lock import LOCK_NAME


def cli(*args):
    return CliRunner().invoke(generate, [str(a) for a in args])


def test_help_lists_the_flags():
    result = cli("--help")
    for flag in ("--output", "--model", "--engine", "--device", "--dtype", "--fit", "--max-width", "--max-height"):
        assert flag in result.output


def test_cli_runs_a_queue(small_rows, tmp_path):
    queue = write_queue(tmp_path / "q.parquet", small_rows[:1])
    result = cli(queue, "--output", tmp_path / "out", "--model", "tiny-random", "--progress", "off")
    assert result.exit_code == 0, result.output
    assert "1 completed, 0 failed, 0 already done of 1 requests" in result.output


@pytest.mark.parametrize("args,message", [
    (["--storage-options", "nope"], r"--storage-options must be a JSON object \(got 'nope': Expecting value"),
    (["--storage-options", "[1]"], r"--storage-options must be a JSON object like .* \(got '\[1\]'\)"),
    (["--engine", "tensorrt-llm", "--device", "cpu"], r"engine 'tensorrt-llm' runs on CUDA only"),
])
def test_bad_options_are_reported_before_any_work(tmp_path, args, message):
    queue = write_queue(tmp_path / "q.parquet", [dict(prompt="p")])
    result = cli(queue, "--output", tmp_path / "out", "--model", "tiny-random", *args)
    assert result.exit_code == 2
    with pytest.raises(AssertionError, match=message):
        raise AssertionError(result.output)
    assert not (tmp_path / "out" / "records").exists()


def test_missing_tensorrt_llm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)
    folder = tmp_path / "Wan-t2v"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    queue = write_queue(tmp_path / "q.parquet", [dict(prompt="p")])
    result = cli(queue, "--output", tmp_path / "out", "--model", folder, "--engine", "tensorrt-llm")
    assert result.exit_code == 2 and "pip install 'videoproc[tensorrt-llm]'" in result.output
    assert "CUDA 13 and Python 3.10 or 3.12" in result.output


def test_locked_output_is_refused(tmp_path):
    from videoproc.common.storage import locate
    from videoproc.generate.lock import output_lock

    queue = write_queue(tmp_path / "q.parquet", [dict(prompt="p")])
    with output_lock(locate(str(tmp_path / "out"))):
        result = cli(queue, "--output", tmp_path / "out", "--model", "tiny-random")
    assert result.exit_code == 2 and f"is locked by generate run pid {os.getpid()}" in result.output


def test_kill_9_mid_queue_then_rerun_completes_each_request_once(tmp_path):
    """Run the CLI in its own process group, SIGKILL the group once some requests are recorded,
    re-run, and check every request is completed exactly once with nothing half-written left."""
    rows = [dict(id=f"r{i}", prompt=f"prompt {i}", size="32x32", num_frames=9, num_inference_steps=4, seed=i)
            for i in range(10)]
    queue = write_queue(tmp_path / "q.parquet", rows)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "jobs.generate", queue, "--output", str(out), "--model", "tiny-random",
           "--progress", "lines"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for_records(out / "records", at_least=1, proc=proc, timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = {n: os.stat(out / "records" / n).st_mtime_ns for n in os.listdir(out / "records")}
    assert 1 <= len(first) < len(rows), "the kill should land in the middle of the queue"
    assert (out / LOCK_NAME).exists()  # left behind by the killed run; its kernel lock died with it

    summary = run_queue(queue, out)
    assert summary.skipped == len(first) and summary.completed == len(rows) - len(first)
    records = read_records(out)
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)
    assert all(r["status"] == "completed" for r in records)
    assert sorted(os.listdir(out / "videos")) == sorted(f"{r['id']}.mp4" for r in rows)  # no partial left
    assert {n: os.stat(out / "records" / n).st_mtime_ns for n in first} == first  # done ones not redone
    assert not (out / LOCK_NAME).exists()

    # Determinism across processes: the subprocess's videos equal a fresh in-process run's.
    again = tmp_path / "again"
    run_queue(write_queue(tmp_path / "q2.parquet", rows[:2]), again)
    assert [r["sha256"] for r in read_records(again)] == [r["sha256"] for r in records[:2]]


def test_ctrl_c_exits_130_and_a_rerun_resumes(tmp_path):
    """SIGINT to the process group, as a terminal's Ctrl-C sends it, once some requests are recorded:
    exit 130 with the resume hint, the lock released, no partial MP4 left, and a re-run completes
    the rest without redoing the recorded ones."""
    rows = [dict(id=f"r{i}", prompt=f"prompt {i}", size="32x32", num_frames=9, num_inference_steps=4, seed=i)
            for i in range(10)]
    queue = write_queue(tmp_path / "q.parquet", rows)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "jobs.generate", queue, "--output", str(out), "--model", "tiny-random",
           "--progress", "off"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_for_records(out / "records", at_least=1, proc=proc, timeout=120)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert "interrupted; run the same command again to resume" in err.decode()
    assert "Traceback" not in err.decode()
    first = {n: os.stat(out / "records" / n).st_mtime_ns for n in os.listdir(out / "records")}
    assert 1 <= len(first) < len(rows), "the interrupt should land in the middle of the queue"
    assert not [n for n in os.listdir(out / "videos") if n.endswith(".partial.mp4")]
    assert not (out / LOCK_NAME).exists()  # released on the way out

    summary = run_queue(queue, out)
    assert summary.skipped == len(first) and summary.completed == len(rows) - len(first)
    assert sorted(r["id"] for r in read_records(out) if r["status"] == "completed") == sorted(r["id"] for r in rows)
    assert {n: os.stat(out / "records" / n).st_mtime_ns for n in first} == first


def test_an_arrow_error_mid_run_is_a_crash_not_a_refusal(tmp_path, monkeypatch):
    """Only refusals exit 2 ("before any work"); an Arrow error while recording the second request
    is a crash (1) with its traceback, the first request stays recorded, and a re-run finishes."""
    import pyarrow as pa

    from videoproc.generate import records

    encode = records._parquet_bytes
    calls = []

    def failing_second(table):
        calls.append(table)
        if len(calls) == 2:
            raise pa.ArrowInvalid("Parquet writer failed: simulated")
        return encode(table)

    monkeypatch.setattr(records, "_parquet_bytes", failing_second)
    rows = [dict(id=f"r{i}", prompt=f"prompt {i}", size="32x32", num_frames=9, num_inference_steps=2, seed=i)
            for i in range(3)]
    queue = write_queue(tmp_path / "q.parquet", rows)
    result = cli(queue, "--output", tmp_path / "out", "--model", "tiny-random", "--progress", "off")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, pa.ArrowInvalid) and "error:" not in result.output
    assert os.listdir(tmp_path / "out" / "records") == ["r0.parquet"]
    assert not (tmp_path / "out" / LOCK_NAME).exists()

    monkeypatch.setattr(records, "_parquet_bytes", encode)
    again = cli(queue, "--output", tmp_path / "out", "--model", "tiny-random", "--progress", "off")
    assert again.exit_code == 0, again.output
    assert "2 completed, 0 failed, 1 already done of 3 requests" in again.output


def _wait_for_records(folder, *, at_least: int, proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before it could be killed")
        if folder.exists() and len([n for n in os.listdir(folder) if not n.startswith(".")]) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {at_least} records within {timeout} s")


# -- the job file (--config): same names as the flags, flags override it ------------------------


@pytest.fixture
def captured(monkeypatch):
    """Run the generate command without loading a model; returns the options it resolved."""
    from videoproc.generate.runner import RunSummary

    seen: list = []

    def fake_run(options, **_):
        seen.append(options)
        return RunSummary(output=options.output)

    monkeypatch.setattr("videoproc.generate.runner.run", fake_run)
    return seen


def _job_file(tmp_path, text: str) -> str:
    path = tmp_path / "job.toml"
    path.write_text(text)
    return str(path)


def test_flags_not_given_leave_the_records_defaults(captured):
    from videoproc.generate.options import GenerateOptions

    result = cli("q.parquet", "--output", "out", "--model", "tiny-random")
    assert result.exit_code == 0, result.output
    assert captured == [GenerateOptions(queue="q.parquet", output="out", models=("tiny-random",))]


def test_flags_override_the_job_file(tmp_path, captured):
    path = _job_file(tmp_path, 'output = "from-file"\nmodel = ["a", "b"]\nfit = "reject"\nmax-frames = 161\n'
                               'max_width = 64\nallowed-domains = ["Example.com"]\nmax-reference-bytes = "1MiB"\n')
    result = cli("q.parquet", "--config", path, "--max-frames", "33", "--output", "from-flag")
    assert result.exit_code == 0, result.output
    (options,) = captured
    assert (options.output, options.models, options.fit) == ("from-flag", ("a", "b"), "reject")
    assert (options.limits.max_frames, options.limits.max_width, options.limits.max_height) == (33, 64, 4096)
    assert options.references.allowed_domains == ("example.com",) and options.references.max_bytes == 2**20

    result = cli("q.parquet", "--config", path, "--model", "tiny-random", "--model", "c")
    assert result.exit_code == 0, result.output
    assert captured[1].models == ("tiny-random", "c")  # repeated flags replace the file's list


@pytest.mark.parametrize(("text", "message"), [
    ('output = "o"\nmodel = "tiny-random"\nmax-frame = 3\nsteps = 4\n',
     r"job file .*job.toml has unknown option\(s\) max_frame, steps; known options: allow_private_hosts, "
     r"allowed_domains, .*, max_frames, .*, model, output, .*storage_options$"),
    ('output = "o"\nmodel = "tiny-random"\nbreak-lock = true\n',
     r"job file .*job.toml sets break_lock, which takes the output's lock from another run: .*pass --break-lock"),
    ('model = "tiny-random"\n', r"--output is required: a local folder or fsspec URL"),
    ('output = "o"\n', r"no model given; pass --model tiny-random or --model PATH"),
    ('output = "o"\nmodel = "tiny-random"\nmax-width = 0\n', r"max_width must be a positive integer \(got 0\)"),
    ('output = "o"\nmodel = "tiny-random"\nfit = "stretch"\n', r"fit must be one of round, reject \(got 'stretch'\)"),
    ("output = = 1\n", r"job file .*job.toml is not valid TOML"),
])
def test_a_bad_job_file_exits_2_before_any_work(tmp_path, captured, text, message):
    result = cli("q.parquet", "--config", _job_file(tmp_path, text))
    assert result.exit_code == 2
    with pytest.raises(AssertionError, match=rf"error: {message}"):
        raise AssertionError(result.output)
    assert not captured


def test_the_bundled_job_file_holds_only_overrides():
    """Defaults live in the option records; a key that restates one would hide a later change."""
    from videoproc.generate.config import build_options, load_config

    values = {**load_config(os.path.join(REPO, "jobs", "generate.toml")), "output": "o", "model": "tiny-random"}
    options = build_options(queue="q.parquet", values=values)
    for key in set(values) - {"output", "model"}:
        without = {k: v for k, v in values.items() if k != key}
        assert build_options(queue="q.parquet", values=without) != options, f"{key} restates the default"
