"""Exactly-once output: resume after kill -9, refusal of incompatible resumes, --overwrite,
--retry-failed, and `videoproc status`."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REAL_DIR, ROOT
from videoproc.common.errors import ResumeError
from videoproc.common.testmedia import COLOUR_CLIPS
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.preprocess.status import format_status, read_status
from videoproc.video.options import VideoOptions

CLIPS = ["carphone_pristine.mp4", "h265_video.mp4", "video_90.mov", "h264_10bits.mp4", "av1_video.mkv"]


def write_manifest(path, uris, **extra) -> str:
    columns = {"id": [f"v{i:03d}" for i in range(len(uris))], "uri": uris, **extra}
    pq.write_table(pa.table(columns), path)
    return str(path)


def clip_uris(count: int) -> list[str]:
    return [os.path.join(REAL_DIR, CLIPS[i % len(CLIPS)]) for i in range(count)]


# Shards of 4, each starting with an untagged video and ending with a tagged one the size and pixel
# format of the next shard's first video: a worker that carried conversion state from one video to
# the next would give a shard's first row other pixels after a resume, or with another worker
# count, than in a run of one worker from start to end.
COLOUR_MIX_SHARDS = (
    ("colour_720_untagged.mp4", "carphone_pristine.mp4", "h265_video.mp4",
     "colour_qcif_bt709_tv.mp4"),
    ("colour_qcif_untagged.mp4", "video_90.mov", "colour_720_bt601_tv.mp4",
     "colour_qcif_bt709_pc_10bit.mp4"),
    ("colour_qcif_untagged_10bit.mp4", "av1_video.mkv", "big_buck_bunny_432_433.webm",
     "colour_qcif_bt709_tv_444.mp4"),
    ("colour_qcif_untagged_444.mp4", "h264_10bits.mp4", "colour_qcif_untagged_centre.mp4",
     "no_duration.webm"),
)


def colour_mix_uris(clip_factory, count: int) -> list[str]:
    made = {clip.name: clip_factory(clip) for clip in COLOUR_CLIPS}
    cycle = [made.get(name) or os.path.join(REAL_DIR, name) for shard in COLOUR_MIX_SHARDS for name in shard]
    return [cycle[i % len(cycle)] for i in range(count)]


def options(manifest, output, **run) -> PreprocessOptions:
    run.setdefault("workers", 2)
    run.setdefault("shard_size", 4)
    run.setdefault("progress", "off")
    return PreprocessOptions(
        manifest=manifest, output=str(output), video=VideoOptions(num_frames=4, size=(32, 32)),
        run=RunOptions(**run),
    )


def read_rows(output) -> pa.Table:
    return pq.read_table(os.path.join(output, "data")).sort_by("id")


def cli(*args, write_delay: float | None = None, **kwargs) -> subprocess.Popen:
    """The job in a new process group; write_delay: seconds each shard write pauses (tests.hooks)."""
    command = (["tests.hooked_cli", "--write-delay", str(write_delay), "preprocess"] if write_delay
               else ["jobs.preprocess"])
    return subprocess.Popen(
        [sys.executable, "-m", *command, *args], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, **kwargs,
    )


def shard_writing(output) -> bool:
    """True while some shard is half-written (its hidden temporary file exists)."""
    data = os.path.join(output, "data")
    return os.path.isdir(data) and any(n.startswith(".") for n in os.listdir(data))


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_exactly_once(tmp_path, clip_factory):
    manifest = write_manifest(tmp_path / "m.parquet", colour_mix_uris(clip_factory, 64))
    reference, output = tmp_path / "reference", tmp_path / "killed"
    # One worker, shards in order: each video's predecessor is the previous row, where the killed
    # runs below start fresh workers on whichever shards are left.
    assert run_preprocess(options(manifest, reference, workers=1)).exit_code == 0
    args = [manifest, "--output", str(output), "--num-frames", "4", "--size", "32x32",
            "--shard-size", "4", "--workers", "2", "--progress", "off"]
    # Each shard write pauses before it is published, so kills land inside shard writes too.
    rng = random.Random(7)
    kills = kills_during_write = 0
    while kills < 12 or kills_during_write < 3:
        proc = cli(*args, write_delay=0.3)
        if kills % 2 == 0:  # wait for a shard write in progress, however slow the machine is
            deadline, wait_for_write = time.monotonic() + 60, True
        else:
            deadline, wait_for_write = time.monotonic() + rng.uniform(0.5, 3.0), False
        while time.monotonic() < deadline and proc.poll() is None:
            if wait_for_write and shard_writing(output):
                break
            time.sleep(0.005)
        if proc.poll() is not None or kills >= 40:
            break  # the run finished before this kill; the rest is checked below
        kills_during_write += shard_writing(output)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 10 and kills_during_write >= 3, (kills, kills_during_write)
    final = cli(*args)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert sorted(os.listdir(output / "data")) == [f"part-{i:05d}.parquet" for i in range(16)]
    resumed, expected = read_rows(output), read_rows(reference)
    assert resumed.num_rows == 64 and len(set(resumed.column("id").to_pylist())) == 64
    pairs = zip(resumed.to_pylist(), expected.to_pylist(), strict=True)
    differ = [row["id"] for row, ref in pairs if row["frames"] != ref["frames"]]
    assert not differ, f"rows whose frames differ from the one-worker run: {differ}"
    assert resumed.column("frame_indices").equals(expected.column("frame_indices"))


def test_resume_skips_committed_shards(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", clip_uris(8))
    out = tmp_path / "out"
    run_preprocess(options(manifest, out))
    os.remove(out / "_videoproc" / "shards" / "part-00001.json")  # as if killed before this marker
    before = os.stat(out / "data" / "part-00000.parquet").st_mtime_ns
    report = run_preprocess(options(manifest, out, workers=1))  # workers may change on resume
    assert report.summary["resumed"] and report.summary["shards_committed"] == 2
    assert os.stat(out / "data" / "part-00000.parquet").st_mtime_ns == before
    assert read_rows(out).num_rows == 8


def test_changed_manifest_is_refused_with_the_fix(tmp_path):
    out = tmp_path / "out"
    run_preprocess(options(write_manifest(tmp_path / "a.parquet", clip_uris(4)), out))
    changed = write_manifest(tmp_path / "b.parquet", clip_uris(5))
    with pytest.raises(ResumeError, match=r"manifest rows was 4, now 5.*--overwrite"):
        run_preprocess(options(changed, out))


def test_edited_pass_through_column_is_refused_naming_it(tmp_path):
    out = tmp_path / "out"
    run_preprocess(options(write_manifest(tmp_path / "a.parquet", clip_uris(4), caption=list("abcd")), out))
    edited = write_manifest(tmp_path / "b.parquet", clip_uris(4), caption=list("abcX"))
    with pytest.raises(ResumeError, match=r"different plan: manifest columns\.caption\.sha256 was '.*--overwrite"):
        run_preprocess(options(edited, out))


def test_output_of_the_version_1_fingerprint_is_refused_naming_the_version(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", clip_uris(2))
    out = tmp_path / "out"
    run_preprocess(options(manifest, out))
    run_json = out / "_videoproc" / "run.json"
    run = json.loads(run_json.read_text())
    run["manifest"] = {"rows": 2, "ids_sha256": "0" * 64, "uris_sha256": "0" * 64}  # as version 1 wrote it
    run_json.write_text(json.dumps(run))
    with pytest.raises(ResumeError, match=r"manifest fingerprint is version 1; this one writes version 2.*--overwrite"):
        run_preprocess(options(manifest, out))
    assert run_preprocess(options(manifest, out, overwrite=True)).summary["rows_ok"] == 2


def test_changed_result_options_are_refused(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", clip_uris(4))
    out = tmp_path / "out"
    run_preprocess(options(manifest, out))
    other = PreprocessOptions(manifest=manifest, output=str(out), video=VideoOptions(num_frames=8, size=(32, 32)),
                              run=RunOptions(workers=2, shard_size=4, progress="off"))
    with pytest.raises(ResumeError, match=r"option video\.num_frames was 4, now 8.*--overwrite"):
        run_preprocess(other)
    with pytest.raises(ResumeError, match=r"option shard_size was 4, now 2"):
        run_preprocess(options(manifest, out, shard_size=2))


def test_overwrite_starts_over(tmp_path):
    out = tmp_path / "out"
    run_preprocess(options(write_manifest(tmp_path / "a.parquet", clip_uris(4)), out))
    changed = write_manifest(tmp_path / "b.parquet", clip_uris(6))
    report = run_preprocess(options(changed, out, overwrite=True))
    assert not report.summary["resumed"] and read_rows(out).num_rows == 6


def test_retry_failed_recovers_rows_in_place(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    uris = clip_uris(6)
    missing = str(media / "late.mp4")
    uris[3] = missing
    manifest = write_manifest(tmp_path / "m.parquet", uris, caption=[f"c{i}" for i in range(6)])
    out = tmp_path / "out"
    first = run_preprocess(options(manifest, out))
    assert first.exit_code == 3 and first.summary["rows_failed"] == 1
    shutil.copy(os.path.join(REAL_DIR, "carphone_pristine.mp4"), missing)  # the cause is fixed
    second = run_preprocess(options(manifest, out, retry_failed=True))
    assert second.exit_code == 0 and second.summary["rows_recovered"] == 1
    rows = pq.read_table(out / "data").to_pylist()
    assert [r["id"] for r in rows] == [f"v{i:03d}" for i in range(6)]
    assert all(r["status"] == "ok" for r in rows) and rows[3]["caption"] == "c3"


def test_status_reports_progress_and_options(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", clip_uris(3) + [str(tmp_path / "nope.mp4")])
    out = tmp_path / "out"
    run_preprocess(options(manifest, out))
    info = read_status(str(out))
    assert info["summary"]["rows_ok"] == 3 and info["summary"]["rows_failed"] == 1
    text = format_status(info)
    assert "1/1 committed" in text and "file not found" in text and "num_frames=4" in text
    assert not read_status(str(tmp_path / "empty"))["exists"]


def test_ctrl_c_exits_130_leaves_no_partial_file_and_resumes(tmp_path):
    manifest = write_manifest(tmp_path / "m.parquet", clip_uris(12))
    output = tmp_path / "out"
    args = [manifest, "--output", str(output), "--num-frames", "4", "--size", "32x32",
            "--shard-size", "4", "--workers", "2", "--progress", "off"]
    proc = cli(*args, write_delay=1)
    deadline = time.monotonic() + 60
    while not shard_writing(output) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "interrupted; run the same command again to resume" in err.decode()
    assert not shard_writing(output)
    again = cli(*args)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    assert read_rows(output).num_rows == 12


def test_shard_write_time_counts_the_publish_once(tmp_path, monkeypatch):
    import json

    import videoproc.common.storage

    publish = videoproc.common.storage.put_file_atomic

    def slow_publish(*args, **kwargs):
        time.sleep(0.5)
        return publish(*args, **kwargs)

    monkeypatch.setattr(videoproc.common.storage, "put_file_atomic", slow_publish)
    manifest = write_manifest(tmp_path / "m.parquet", clip_uris(2))
    run_preprocess(options(manifest, tmp_path / "out", workers=1, shard_size=2))
    with open(tmp_path / "out" / "_videoproc" / "shards" / "part-00000.json") as f:
        stats = json.load(f)
    assert 0.5 <= stats["write_s"] < 0.9, stats  # counted twice it would be over 1 s
    assert stats["write_s"] <= stats["wall_s"]
