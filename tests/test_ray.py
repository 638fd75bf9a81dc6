"""The Ray executor against a real two-node Ray cluster on this machine (tests.servers.ray_cluster).

The local executor is the reference: the same manifest run on the cluster must give the same
shard files, byte for byte, the same exit codes, and the same resume and --retry-failed behaviour.
Losing a node mid-run must still end with exactly one row per manifest row.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import GENERATED_DIR, REAL_DIR
from tests.hooks import faulting_job
from tests.servers.ray_cluster import RayCluster, foreign_connections, process_cmdline
from videoproc.common import storage
from videoproc.common.errors import OptionsError
from videoproc.common.exitcodes import ExitCode
from videoproc.common.testmedia import SAMPLE_CLIPS
from videoproc.preprocess import executor
from videoproc.preprocess.config import build_options
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.manifest import read_manifest
from videoproc.preprocess.options import PreprocessOptions
from videoproc.preprocess.runstate import Shard
from videoproc.preprocess.shards import ShardWork
from videoproc.preprocess.write import output_schema

# A hung cluster should fail its test in minutes, not at the suite-wide limit.
pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Stats that measure the run rather than describe its rows.
TIMING_KEYS = {"decode_s", "write_s", "wall_s", "committed"}
RUN_KEYS = TIMING_KEYS | {"run_id"}  # differ between any two runs


def _write_manifest(path: str, uris: list[str]) -> str:
    ids = [f"v{i:02d}-{os.path.basename(u).split('.')[0]}" for i, u in enumerate(uris)]
    captions = [f"caption {i}" for i in range(len(uris))]
    pq.write_table(pa.table({"id": ids, "uri": uris, "caption": captions}), path)
    return path


def _options(manifest: str, output: str, **values) -> PreprocessOptions:
    base = {"output": output, "num_frames": 4, "size": "64x48", "workers": 2, "progress": "off"}
    return build_options(manifest=manifest, values=base | values)


def _on_ray(cluster: RayCluster, **values) -> dict:
    return {"executor": "ray", "ray_address": cluster.address, **values}


def _shard_files(output: str) -> dict[str, bytes]:
    data = os.path.join(output, "data")
    return {name: open(os.path.join(data, name), "rb").read() for name in sorted(os.listdir(data))}


def _markers(output: str) -> dict[str, dict]:
    folder = os.path.join(output, "_videoproc", "shards")
    loc = storage.locate(folder)
    return {
        name: {k: v for k, v in storage.read_json(loc.child(name)).items() if k not in RUN_KEYS}
        for name in sorted(os.listdir(folder))
    }


def _rows(output: str) -> list[dict]:
    return pq.read_table(os.path.join(output, "data")).to_pylist()


@pytest.fixture(scope="module")
def sample_manifest(tmp_path_factory, sample_clips) -> str:
    """14 rows: every real clip (one damaged), the generated clips, one relative path (resolved
    against the driver's working folder) and one missing file, so failed rows are compared too."""
    folder = tmp_path_factory.mktemp("ray-manifest")
    real = sorted(os.path.join(REAL_DIR, f) for f in os.listdir(REAL_DIR) if not f.endswith(".md"))
    generated = [os.path.join(GENERATED_DIR, c.name) for c in SAMPLE_CLIPS]
    relative = os.path.relpath(os.path.join(GENERATED_DIR, SAMPLE_CLIPS[0].name), ROOT)
    uris = real + generated + [relative, str(folder / "missing.mp4")]
    return _write_manifest(str(folder / "manifest.parquet"), uris)


@pytest.fixture(scope="module")
def local_reference(sample_manifest, tmp_path_factory):
    """The local executor's output for the sample manifest: the reference every Ray run must match."""
    output = str(tmp_path_factory.mktemp("local") / "out")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        report = run_preprocess(_options(sample_manifest, output, shard_size=4))
    return output, report


def test_cluster_output_is_byte_identical_to_local(ray_cluster, sample_manifest, local_reference, tmp_path,
                                                   monkeypatch):
    local_out, local_report = local_reference
    output = str(tmp_path / "ray")
    monkeypatch.chdir(ROOT)
    report = run_preprocess(_options(sample_manifest, output, shard_size=4, **_on_ray(ray_cluster)))

    assert report.exit_code == local_report.exit_code == ExitCode.ROWS_FAILED
    assert _shard_files(output) == _shard_files(local_out)
    assert _markers(output) == _markers(local_out)
    rows = _rows(output)
    assert [r["status"] for r in rows].count("ok") == report.summary["rows_ok"] == 13
    assert "missing.mp4" in rows[-1]["error"]


@pytest.mark.slow
def test_node_lost_mid_run_still_gives_every_row_once(ray_cluster, sample_manifest, local_reference, tmp_path,
                                                      monkeypatch):
    """SIGKILL the worker node while it decodes a shard: Ray re-runs that task on the head, the
    retried attempt rewrites the same file, and the output is exactly the local executor's rows."""
    local_out, local_report = local_reference
    output = str(tmp_path / "ray")
    victim = ray_cluster.workers[0]
    killed = threading.Event()
    watcher = threading.Thread(target=_kill_when_busy, args=(ray_cluster, victim, killed), daemon=True)
    monkeypatch.chdir(ROOT)
    watcher.start()
    try:
        report = run_preprocess(_options(sample_manifest, output, shard_size=2, **_on_ray(ray_cluster)))
    finally:
        watcher.join(timeout=60)
        if not ray_cluster.workers:
            ray_cluster.add_worker()

    assert killed.is_set(), "the worker node never started a shard, so nothing was killed"
    assert report.exit_code == local_report.exit_code
    assert report.summary["shards_committed"] == report.summary["shards_total"] == 7
    assert _rows(output) == _rows(local_out)
    visible = sorted(n for n in os.listdir(os.path.join(output, "data")) if not n.startswith("."))
    assert visible == [f"part-{i:05d}.parquet" for i in range(7)]


@pytest.mark.slow
def test_shard_lost_for_good_is_finished_by_a_rerun(ray_cluster, sample_manifest, local_reference, tmp_path,
                                                    monkeypatch):
    """With no retries left, the shard of the killed node stays uncommitted (exit 4, the error
    names the shard), and a plain re-run finishes the output with the local executor's rows."""
    import videoproc.preprocess.executor_ray

    local_out, local_report = local_reference
    output = str(tmp_path / "ray")
    monkeypatch.setattr(videoproc.preprocess.executor_ray, "TASK_MAX_RETRIES", 0)
    monkeypatch.chdir(ROOT)
    killed = threading.Event()
    watcher = threading.Thread(target=_kill_when_busy, args=(ray_cluster, ray_cluster.workers[0], killed), daemon=True)
    watcher.start()
    try:
        first = run_preprocess(_options(sample_manifest, output, shard_size=2, **_on_ray(ray_cluster)))
    finally:
        watcher.join(timeout=60)
        if not ray_cluster.workers:
            ray_cluster.add_worker()

    assert killed.is_set(), "the worker node never started a shard, so nothing was killed"
    assert first.exit_code == ExitCode.INCOMPLETE
    assert first.summary["shards_pending"] == 1
    assert first.summary["write_errors"][0].startswith("shard part-0000")
    assert "was lost on the Ray cluster" in first.summary["write_errors"][0]
    again = run_preprocess(_options(sample_manifest, output, shard_size=2, **_on_ray(ray_cluster)))
    assert again.exit_code == local_report.exit_code
    assert _rows(output) == _rows(local_out)


def _kill_when_busy(cluster: RayCluster, node, killed: threading.Event) -> None:
    """Kill `node` while one of its Ray workers runs a shard. A shard's one-video pool is a child
    of the worker's multiprocessing fork server and lives only while the task decodes; the fork
    server itself outlives tasks, so its mere presence would not prove a task is in flight."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pids = cluster.node_pids(node)
        servers = {pid for pid in pids if b"forkserver" in process_cmdline(pid)}
        if any(_parent(pid) in servers for pid in pids):
            cluster.kill_node(node)
            killed.set()
            return
        time.sleep(0.05)


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_resume_redoes_only_uncommitted_shards(ray_cluster, sample_manifest, local_reference, tmp_path, monkeypatch):
    """Shard 1 lost entirely, shard 2 written but its marker missing (the driver never heard back
    from the task): a re-run on the cluster redoes both, leaves the rest alone, and ends identical."""
    local_out, local_report = local_reference
    output = str(tmp_path / "ray")
    shutil.copytree(local_out, output)
    os.remove(os.path.join(output, "data", "part-00001.parquet"))
    for shard in ("part-00001", "part-00002"):
        os.remove(os.path.join(output, "_videoproc", "shards", f"{shard}.json"))
    untouched = os.stat(os.path.join(output, "data", "part-00000.parquet")).st_mtime_ns
    monkeypatch.chdir(ROOT)

    report = run_preprocess(_options(sample_manifest, output, shard_size=4, **_on_ray(ray_cluster)))

    assert report.summary["resumed"] is True
    assert report.exit_code == local_report.exit_code
    assert _shard_files(output) == _shard_files(local_out)
    assert os.stat(os.path.join(output, "data", "part-00000.parquet")).st_mtime_ns == untouched


@pytest.fixture
def late_manifest(tmp_path, sample_clips) -> tuple[str, str]:
    """Three rows whose last video does not exist yet: it fails, then appears for --retry-failed."""
    late = str(tmp_path / "late.mp4")
    uris = [sample_clips["vfr.mkv"], sample_clips["rotated_90.mp4"], late]
    return _write_manifest(str(tmp_path / "late.parquet"), uris), late


def test_retry_failed_matches_local(ray_cluster, late_manifest, sample_clips, tmp_path):
    manifest, late = late_manifest
    first = str(tmp_path / "first")
    assert run_preprocess(_options(manifest, first, shard_size=2)).exit_code == ExitCode.ROWS_FAILED
    shutil.copy(sample_clips["testsrc_h264_3s.mp4"], late)
    outputs = {}
    for kind in ("local", "ray"):
        outputs[kind] = str(tmp_path / kind)
        shutil.copytree(first, outputs[kind])
        extra = _on_ray(ray_cluster) if kind == "ray" else {}
        report = run_preprocess(_options(manifest, outputs[kind], shard_size=2, retry_failed=True, **extra))
        assert report.exit_code == ExitCode.OK
        assert report.summary["rows_recovered"] == 1
    assert _shard_files(outputs["ray"]) == _shard_files(outputs["local"])
    assert _markers(outputs["ray"]) == _markers(outputs["local"])


def test_cli_exit_code_and_output_match_local(ray_cluster, late_manifest, tmp_path):
    manifest, _ = late_manifest
    cli = [sys.executable, "-c", "from videoproc.cli import main; main()", "preprocess", manifest]
    flags = ["--num-frames", "4", "--size", "64x48", "--shard-size", "2", "--progress", "off"]
    env = os.environ | ray_cluster.driver_env()
    local = subprocess.run([*cli, "--output", str(tmp_path / "local"), *flags], env=env, capture_output=True, text=True)
    ray = subprocess.run(
        [*cli, "--output", str(tmp_path / "ray"), *flags, "--executor", "ray", "--ray-address", ray_cluster.address],
        env=env, capture_output=True, text=True,
    )
    assert local.returncode == ExitCode.ROWS_FAILED, local.stderr[-2000:]
    assert ray.returncode == local.returncode, ray.stderr[-2000:]
    assert "rows: 3 total, 2 ok, 1 failed" in ray.stdout
    assert _shard_files(str(tmp_path / "ray")) == _shard_files(str(tmp_path / "local"))


def test_crashing_and_hanging_videos_fail_only_their_rows(ray_cluster, sample_clips, tmp_path, monkeypatch):
    """A decoder segfault or a hang inside a task costs one row, not the shard (the task runs each
    video in a child process); the driver ships the test fault hook (tests.hooks) to the tasks."""
    monkeypatch.setattr(executor, "VIDEO_JOB", faulting_job)
    good = sample_clips["vfr.mkv"]
    uris = [good, str(tmp_path / "fault-segfault.mp4"), sample_clips["rotated_90.mp4"],
            str(tmp_path / "fault-hang.mp4"), good]
    manifest = _write_manifest(str(tmp_path / "faults.parquet"), uris)
    output = str(tmp_path / "out")
    report = run_preprocess(_options(manifest, output, shard_size=5, timeout=3, **_on_ray(ray_cluster)))

    assert report.exit_code == ExitCode.ROWS_FAILED
    rows = _rows(output)
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "failed", "ok"]
    assert rows[1]["error"].startswith(f"worker crashed (signal 11) while decoding {uris[1]}")
    assert rows[3]["error"] == f"timed out after 3s while decoding {uris[3]}"


def test_cluster_talks_over_loopback_only(ray_cluster):
    """Every TCP connection of the cluster's processes and of this driver ends on 127.0.0.1."""
    import ray

    ray.init(address=ray_cluster.address)
    try:
        assert ray.get(ray.remote(lambda: 1).remote()) == 1
        assert foreign_connections(ray_cluster.all_pids() + [os.getpid()]) == []
        assert {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]} == {"127.0.0.1"}
    finally:
        ray.shutdown()


def test_retried_shard_rewrites_the_same_file(sample_clips, tmp_path):
    """What a task retry does to storage, without Ray: running a shard's task twice (the first
    attempt's result lost with its node) leaves one file, byte-identical, and no temporary."""
    from videoproc.preprocess.executor_ray import run_shard

    path = _write_manifest(str(tmp_path / "m.parquet"), [sample_clips["vfr.mkv"], sample_clips["rotated_90.mp4"]])
    manifest = read_manifest(path)
    options = _options(path, str(tmp_path / "out"))
    shard = Shard(index=0, start=0, stop=2)
    work = ShardWork(shard=shard, manifest=manifest)
    final = str(tmp_path / "out" / "data" / "part-00000.parquet")
    schema = output_schema(manifest.passthrough_schema)

    outcomes = []
    for _ in range(2):
        outcome, statuses = run_shard(work, schema=schema, final_url=final, options=options, folder=str(tmp_path))
        outcomes.append((outcome, Path(final).read_bytes()))
        ids, uris = manifest.rows_for(0, 2)["id"].to_pylist(), manifest.rows_for(0, 2)["uri"].to_pylist()
        assert statuses == [(0, ids[0], uris[0], "ok", None, None), (1, ids[1], uris[1], "ok", None, None)]
    assert outcomes[0][1] == outcomes[1][1]
    strip = lambda stats: {k: v for k, v in stats.items() if k not in RUN_KEYS}  # noqa: E731
    assert strip(outcomes[0][0].stats) == strip(outcomes[1][0].stats)
    assert os.listdir(os.path.dirname(final)) == ["part-00000.parquet"]


def test_missing_ray_names_the_extra(tmp_path, monkeypatch):
    from videoproc.preprocess.job import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)
    options = _options(str(tmp_path / "m.parquet"), str(tmp_path / "out"), executor="ray")
    expected = r"--executor ray needs Ray, which is not installed here .*pip install 'videoproc\[ray\]'"
    with pytest.raises(OptionsError, match=expected):
        make_executor(options)


def test_unreachable_address_fails_fast_with_the_fix():
    from videoproc.common.ray_cluster import _check_reachable

    expected = (r"cannot reach the Ray cluster at 127\.0\.0\.1:1: "
                r".*--ray-address must be auto or the head node's HOST:PORT")
    with pytest.raises(OptionsError, match=expected):
        _check_reachable("127.0.0.1:1")
