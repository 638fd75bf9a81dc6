"""The command line end to end, in subprocesses as a scheduler runs it: output, exit codes, status,
resume, and the README's read-back snippet."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import REAL_DIR, ffmpeg_frames
from tests.helpers import frames_of, read_output, write_manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--num-frames", "4", "--size", "32x24", "--workers", "2", "--shard-size", "2", "--progress", "lines"]


def videoproc(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    """The `videoproc` console script when installed beside this interpreter, else the same entry."""
    script = os.path.join(os.path.dirname(sys.executable), "videoproc")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-c", "from videoproc.cli import main; main()"]
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def preprocess(*args: str) -> subprocess.CompletedProcess:
    """The scheduled job's entry point, as the Makefile runs it."""
    cmd = [sys.executable, "-m", "jobs.preprocess", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def sample_manifest(tmp_path_factory, sample_clips) -> str:
    """Like the bundled sample: local paths, file://, a data: URI, real and generated clips."""
    folder = tmp_path_factory.mktemp("cli")
    with open(sample_clips["vfr.mkv"], "rb") as f:
        inline = "data:video/x-matroska;base64," + base64.b64encode(f.read()).decode()
    uris = [
        f"file://{sample_clips['testsrc_h264_3s.mp4']}",
        sample_clips["rotated_90.mp4"],
        os.path.join(REAL_DIR, "carphone_pristine.mp4"),
        inline,
        os.path.join(REAL_DIR, "h265_video.mp4"),
    ]
    return write_manifest(
        str(folder / "sample.parquet"),
        {"id": ["testsrc", "rotated", "carphone", "inline", "hevc"], "uri": uris, "caption": list("abcde")},
    )


@pytest.fixture(scope="module")
def sample_run(sample_manifest, tmp_path_factory) -> tuple[str, subprocess.CompletedProcess]:
    output = str(tmp_path_factory.mktemp("cli-out") / "out")
    return output, preprocess(sample_manifest, "--output", output, "--config", "jobs/preprocess.toml", *FAST)


def test_preprocess_writes_readable_rows(sample_run, sample_clips):
    output, proc = sample_run
    assert proc.returncode == 0, proc.stderr
    assert "rows: 5 total, 5 ok, 0 failed" in proc.stdout
    assert f"output: {output}" in proc.stdout
    rows = read_output(output)
    assert [r["id"] for r in rows] == ["testsrc", "rotated", "carphone", "inline", "hevc"]
    assert [r["caption"] for r in rows] == list("abcde")
    assert sorted(os.listdir(os.path.join(output, "data"))) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"
    ]
    for row in rows:
        assert row["status"] == "ok" and row["error"] is None and row["dtype"] == "uint8"
        assert frames_of(row).shape == (4, 24, 32, 3)
    testsrc = rows[0]
    assert testsrc["frame_indices"] == [0, 30, 59, 89]
    assert testsrc["source_num_frames"] == 90 and testsrc["codec"] == "h264"
    assert testsrc["source_width"] == 320 and testsrc["source_height"] == 240
    assert rows[1]["rotation"] in (90, 270)
    reference = ffmpeg_frames(sample_clips["testsrc_h264_3s.mp4"], vf="scale=32:24:flags=bilinear")
    assert np.array_equal(frames_of(testsrc), reference[testsrc["frame_indices"]])
    run_meta = os.path.join(output, "_videoproc")
    assert {"run.json", "summary.json", "shards"} <= set(os.listdir(run_meta))


def test_status_reports_the_run(sample_run):
    output, _ = sample_run
    proc = videoproc("status", output)
    assert proc.returncode == 0, proc.stderr
    assert "rows: 5 total, 5 ok, 0 failed" in proc.stdout
    assert "shards: 3/3 committed" in proc.stdout
    assert "num_frames=4, size=32x24, resize_mode=stretch" in proc.stdout


def test_status_of_a_folder_without_a_run(tmp_path):
    proc = videoproc("status", str(tmp_path))
    assert proc.returncode == 2
    assert f"no videoproc run found at {tmp_path}" in proc.stdout


def test_rerun_resumes_without_redoing_work(sample_manifest, tmp_path):
    output = str(tmp_path / "out")
    first = preprocess(sample_manifest, "--output", output, *FAST)
    assert first.returncode == 0, first.stderr
    data = os.path.join(output, "data")
    before = {name: os.stat(os.path.join(data, name)).st_mtime_ns for name in os.listdir(data)}
    # One shard lost its completion marker (a run killed between data and marker): only it is redone.
    os.remove(os.path.join(output, "_videoproc", "shards", "part-00001.json"))
    second = preprocess(sample_manifest, "--output", output, *FAST)
    assert second.returncode == 0, second.stderr
    after = {name: os.stat(os.path.join(data, name)).st_mtime_ns for name in os.listdir(data)}
    assert after["part-00000.parquet"] == before["part-00000.parquet"]
    assert after["part-00002.parquet"] == before["part-00002.parquet"]
    assert after["part-00001.parquet"] != before["part-00001.parquet"]
    assert len(read_output(output)) == 5
    third = preprocess(sample_manifest, "--output", output, *FAST)
    assert third.returncode == 0
    final = {name: os.stat(os.path.join(data, name)).st_mtime_ns for name in os.listdir(data)}
    assert final == after  # everything committed: nothing rewritten


def test_resume_with_different_options_is_refused(sample_run, sample_manifest):
    output, _ = sample_run
    proc = preprocess(sample_manifest, "--output", output, *FAST[:2], "--size", "64x64")
    assert proc.returncode == 2
    assert f"error: output {output} was made by a run with a different plan" in proc.stderr
    assert "re-run with --overwrite to start over" in proc.stderr


def test_some_rows_failed_exits_3(tmp_path):
    manifest = write_manifest(
        str(tmp_path / "m.parquet"),
        {"uri": [os.path.join(REAL_DIR, "h265_video.mp4"), str(tmp_path / "gone.mp4")]},
    )
    proc = videoproc("preprocess", manifest, "--output", str(tmp_path / "out"), *FAST)
    assert proc.returncode == 3, proc.stderr
    assert "rows: 2 total, 1 ok, 1 failed" in proc.stdout
    gone = tmp_path / "gone.mp4"
    # The most common errors are listed by kind, with an example message; `status` lists them the same way.
    assert f"       1  source.not_found  e.g. file not found: {gone}" in proc.stdout
    status = videoproc("status", str(tmp_path / "out"))
    assert f"       1  source.not_found  e.g. file not found: {gone}" in status.stdout
    rows = read_output(str(tmp_path / "out"))
    assert [(r["status"], r["error_kind"]) for r in rows] == [("ok", None), ("failed", "source.not_found")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fps", "2", "--num-frames", "4"], "error: fps and num_frames cannot be specified at the same time"),
        (["--num-frames", "-1"], "error: num_frames must be a positive integer, 1 or more (got -1)"),
        (["--size", "huge"], "error: size must be WIDTHxHEIGHT in pixels or 'original' (got 'huge')"),
    ],
)
def test_bad_options_exit_2_with_the_message_on_stderr(sample_manifest, tmp_path, args, message):
    output = tmp_path / "out"
    proc = videoproc("preprocess", sample_manifest, "--output", str(output), *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not output.exists()  # refused before any work


def test_bad_manifest_exits_2_before_any_work(tmp_path):
    manifest = write_manifest(str(tmp_path / "m.parquet"), {"video": ["a.mp4"]})
    proc = videoproc("preprocess", manifest, "--output", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert f"error: manifest {manifest} has no column 'uri'" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_output_exits_2(sample_manifest):
    proc = videoproc("preprocess", sample_manifest)
    assert proc.returncode == 2
    assert "--output is required" in proc.stderr


# -- reading a row back, as the README shows it -----------------------------------------------


def _readme_snippet() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    snippet = next((b for b in blocks if "frombuffer" in b and "read_table" in b), None)
    assert snippet is not None, "the README must show how to read a row back into numpy"
    return snippet


def test_readme_read_back_snippet_works(sample_run, tmp_path):
    output, _ = sample_run
    snippet = _readme_snippet()
    code = [line for line in snippet.strip().splitlines() if line.strip() and not line.startswith("#")]
    assert len(code) <= 3, "three lines, as the README promises"
    # The snippet names a path relative to the repository; give it our output at that path.
    for path in re.findall(r"""read_table\(\s*["']([^"']+)["']""", snippet):
        target = tmp_path / path
        if path.endswith(".parquet"):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(output, "data", "part-00000.parquet"), target)
        else:
            shutil.copytree(os.path.join(output, "data" if path.rstrip("/").endswith("data") else ""), target)
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(snippet, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    arrays = [v for v in namespace.values() if isinstance(v, np.ndarray)]
    assert arrays, "the snippet must leave a numpy array"
    expected = frames_of(pq.read_table(os.path.join(output, "data", "part-00000.parquet")).slice(0, 1).to_pylist()[0])
    assert np.array_equal(arrays[-1], expected)

    import torch

    tensor = torch.from_numpy(arrays[-1].copy())  # the README's note for a tensor
    assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == expected.shape


# -- the job file and sampling flags, as `make preprocess` passes them -------------------------


@pytest.fixture(scope="module")
def testsrc_manifest(tmp_path_factory, sample_clips) -> str:
    """One 3 s, 30 fps clip of 90 frames: indices show which sampling rule ran."""
    path = str(tmp_path_factory.mktemp("testsrc") / "m.parquet")
    return write_manifest(path, {"id": ["testsrc"], "uri": [sample_clips["testsrc_h264_3s.mp4"]]})


def _indices_after(manifest: str, output: str, *args: str) -> list[int]:
    proc = preprocess(manifest, "--output", output, "--size", "32x24", "--workers", "1", "--progress", "off", *args)
    assert proc.returncode == 0, proc.stderr
    return read_output(output)[0]["frame_indices"]


def test_readme_make_preprocess_args_work_with_the_bundled_job_file(testsrc_manifest, tmp_path):
    with open(os.path.join(ROOT, "README.md")) as f:
        args = re.search(r'make preprocess MANIFEST=\S+ OUTPUT=\S+ ARGS="([^"]+)"', f.read()).group(1).split()
    assert args == ["--fps", "2", "--max-frames", "32"]
    indices = _indices_after(testsrc_manifest, str(tmp_path / "out"), "--config", "jobs/preprocess.toml", *args)
    assert indices == [0, 15, 30, 45, 60, 75]  # 2 per second over 3 s, under the cap of 32


@pytest.mark.parametrize(
    ("job_file", "flags", "expected"),
    [
        ("num-frames = 16\n", ["--fps", "2", "--max-frames", "4"], [0, 30, 45, 75]),
        ("fps = 2.0\nmax-frames = 4\n", ["--num-frames", "4"], [0, 30, 59, 89]),
    ],
)
def test_a_sampling_flag_replaces_the_job_files_sampling_group(testsrc_manifest, tmp_path, job_file, flags, expected):
    config = tmp_path / "job.toml"
    config.write_text(job_file)
    assert _indices_after(testsrc_manifest, str(tmp_path / "out"), "--config", str(config), *flags) == expected
