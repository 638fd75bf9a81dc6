"""Every kind of bad input becomes one failed row with a clear error, and the rest of the run goes on.

All kinds go through ONE run of the job with two workers. The run happens in a fresh interpreter
that installs the test-only fault hook (tests.hooks: a worker that really segfaults or hangs on a
marked URI) for that run and nowhere else.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GENERATED_DIR, REAL_DIR
from tests.helpers import AUDIO_ONLY, frames_of, read_output, write_manifest
from tests.mp4bombs import BOMB_BASE, TABLES, make_bomb
from tests.servers.http_server import HttpTestServer
from tests.servers.s3 import free_port
from videoproc.common.errors import ERROR_KINDS
from videoproc.common.testmedia import ffmpeg_exe
from videoproc.preprocess.config import build_options
from videoproc.preprocess.job import run_preprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 4.0  # per video: the hang row costs this much; good rows need well under a second
MAX_ALLOC = 2**20  # 1 MiB: a 720p source frame alone (2.7 MB) is over it, a 320x240 one is not
KINDS = 31

RUN = """
import json, sys
from tests.hooks import install_faults
from videoproc.preprocess.config import build_options
from videoproc.preprocess.job import run_preprocess
options = build_options(manifest=sys.argv[1], values=json.loads(sys.argv[2]))
install_faults()
report = run_preprocess(options)
print(json.dumps(report.summary))
sys.exit(report.exit_code)
"""


def _corrupt(folder: str) -> str:
    """A file that starts like an MP4 (a valid ftyp box) and is noise after it."""
    path = os.path.join(folder, "corrupt.mp4")
    with open(os.path.join(REAL_DIR, "carphone_pristine.mp4"), "rb") as f:
        head = f.read(32)
    with open(path, "wb") as f:
        f.write(head + random.Random(3).randbytes(200_000))
    return path


def _remote_inputs(http: HttpTestServer, closed_port: int) -> list[tuple[str, str, str]]:
    return [
        ("http-404", http.url("status/404"), f"HTTP 404 for {http.url('status/404')}"),
        ("http-refused", f"http://127.0.0.1:{closed_port}/video.mp4", "Connection refused"),
        ("http-timeout", http.url("slow/30/clip.mp4"), "for 1.0 s (read_timeout)"),
        ("http-private", "http://10.0.0.1/video.mp4", "10.0.0.1"),
        ("http-metadata", "http://169.254.169.254/latest/meta-data", "169.254.169.254"),
    ]


def _bad_inputs(folder: str, clip_factory) -> list[tuple[str, str, str]]:
    """(id, uri, the error expected in its row), interleaved with good rows by the caller."""
    empty = os.path.join(folder, "empty.mp4")
    open(empty, "wb").close()
    text = os.path.join(folder, "notes.mp4")
    with open(text, "w") as f:
        f.write("this is not a video\n" * 50)
    png = os.path.join(folder, "picture.png")
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "color=red:size=16x16", "-frames:v", "1", png],
        check=True,
    )
    truncated = os.path.join(folder, "truncated.mp4")
    with open(os.path.join(REAL_DIR, "carphone_pristine.mp4"), "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(64 * 1024))
    with open(os.path.join(GENERATED_DIR, "testsrc_h264_3s.mp4"), "rb") as f:
        payload = base64.b64encode(f.read()).decode()
    missing = os.path.join(folder, "missing.mp4")
    return [
        ("corrupt", _corrupt(folder), "not a readable video"),
        ("missing", missing, f"file not found: {missing}"),
        ("directory", folder, f"{folder} is a directory, not a video file"),
        ("zero-bytes", empty, "not a readable video container"),
        ("text", text, "not a readable video container"),
        ("png", png, "this is a still image (png), not a video"),
        ("truncated", truncated, "not a readable video container"),
        ("data-wrong-type", f"data:image/png;base64,{payload}", "data URI media type 'image/png' is not a video"),
        ("data-bad-base64", "data:video/mp4;base64,@@not base64@@", "data URI payload is not valid base64"),
        ("audio-only", clip_factory(AUDIO_ONLY), "no video stream in the container (streams found: audio)"),
        ("oversize", os.path.join(REAL_DIR, "big_buck_bunny_432_433.webm"), f"over --max-alloc {MAX_ALLOC}"),
        ("nul\0id", os.path.join(GENERATED_DIR, "vfr.mkv"),
         "id 'nul\\x00id' is not allowed: ids must be non-empty and contain no NUL character; "
         "fix the manifest's id column"),
        ("crash", "fault-segfault.mp4", "worker crashed (signal 11) while decoding fault-segfault.mp4"),
        ("hang", "fault-hang.mp4", f"timed out after {TIMEOUT_S:g}s while decoding fault-hang.mp4"),
    ]


def _uri_rule_inputs(folder: str, output: str) -> list[tuple[str, str, str]]:
    """Rows the URI rules refuse before anything is read."""
    fifo = os.path.join(folder, "pipe.mp4")
    os.mkfifo(fifo)
    own = os.path.join(output, "data", "part-000000.parquet")
    return [
        ("fifo", fifo, f"{fifo} is a FIFO (named pipe), not a regular file"),
        ("dev-zero", "/dev/zero", "/dev/zero is a character device, not a regular file"),
        ("chained", "s3://bucket/k.mp4::http://127.0.0.1/x.mp4", "contains '::', which chains a second protocol"),
        ("no-slashes", "s3:x/outside.mp4", "has the scheme 's3' but no '//' after it"),
        ("own-output", own, f"is inside this run's own output ({output})"),
        ("site-local-v6", "http://[fec0::1]/video.mp4", "fec0::1"),
        ("ietf-protocol-v4", "http://192.0.0.170/video.mp4", "192.0.0.170"),
        ("", os.path.join(GENERATED_DIR, "vfr.mkv"), "id '' is not allowed: ids must be non-empty"),
    ]


def _bomb_inputs(folder: str, clip_factory) -> list[tuple[str, str, str]]:
    """MP4s whose sample tables claim billions of samples (tests/mp4bombs.py)."""
    with open(clip_factory(BOMB_BASE), "rb") as f:
        base = f.read()
    inputs = []
    for table in TABLES:
        path = os.path.join(folder, f"{table}-bomb.mp4")
        with open(path, "wb") as f:
            f.write(make_bomb(base, table))
        inputs.append((f"{table}-bomb", path, f"the MP4's {table} table (track 1, video) claims"))
    return inputs


@pytest.fixture(scope="module")
def http_server():
    with HttpTestServer({"clip.mp4": os.path.join(REAL_DIR, "carphone_pristine.mp4")}) as server:
        yield server


@pytest.fixture(scope="module")
def failure_run(tmp_path_factory, clip_factory, sample_clips, http_server):
    folder = str(tmp_path_factory.mktemp("bad-inputs"))
    closed_port = free_port()
    good = [
        ("good-0", sample_clips["testsrc_h264_3s.mp4"]),
        ("good-1", os.path.join(REAL_DIR, "carphone_pristine.mp4")),
        ("good-2", "data:video/mp4;base64," + base64.b64encode(Path(sample_clips["vfr.mkv"]).read_bytes()).decode()),
    ]
    output = os.path.join(folder, "out")
    bad = (_bad_inputs(folder, clip_factory) + _remote_inputs(http_server, closed_port)
           + _uri_rule_inputs(folder, output) + _bomb_inputs(folder, clip_factory))
    good.append(("good-http", http_server.url("files/clip.mp4")))
    rows = [good[0], *[(i, u) for i, u, _ in bad[:7]], good[1], *[(i, u) for i, u, _ in bad[7:14]], good[2],
            *[(i, u) for i, u, _ in bad[14:]], good[3]]
    manifest = write_manifest(
        os.path.join(folder, "manifest.parquet"),
        {"id": [r[0] for r in rows], "uri": [r[1] for r in rows], "n": list(range(len(rows)))},
    )
    values = {
        "output": output, "workers": 2, "timeout": TIMEOUT_S, "max_alloc": MAX_ALLOC, "num_frames": 4,
        "size": "32x24", "shard_size": 7, "progress": "lines", "read_timeout": 1.0, "http_retries": 0,
        # The test server and the closed port are allowed; 10.0.0.1 and 169.254.169.254 are not,
        # and are refused before any connection is attempted.
        "allow_private_hosts": f"127.0.0.1:{http_server.port},127.0.0.1:{closed_port}",
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUN, manifest, json.dumps(values)], cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.stdout.strip(), proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "rows": read_output(output), "ids": [r[0] for r in rows], "bad": bad, "summary": summary,
        "exit_code": proc.returncode,
    }


def test_every_manifest_row_gives_one_output_row_in_order(failure_run):
    assert [r["id"] for r in failure_run["rows"]] == failure_run["ids"]
    assert [r["n"] for r in failure_run["rows"]] == list(range(len(failure_run["ids"])))


def test_the_matrix_covers_at_least_thirty_kinds(failure_run):
    assert len(failure_run["bad"]) == KINDS >= 30


@pytest.mark.parametrize("index", range(KINDS))
def test_each_failure_kind_is_a_failed_row_with_a_clear_error(failure_run, index):
    row_id, _, expected = failure_run["bad"][index]
    row = next(r for r in failure_run["rows"] if r["id"] == row_id)
    assert row["status"] == "failed"
    assert expected in row["error"], row["error"]
    assert row["frames"] is None and row["shape"] is None


def test_the_good_rows_are_intact(failure_run):
    good = [r for r in failure_run["rows"] if r["id"].startswith("good-")]
    assert [r["status"] for r in good] == ["ok"] * 4, [r["error"] for r in good]
    for row in good:
        assert row["error"] is None
        assert frames_of(row).shape == (4, 24, 32, 3)
        assert len(row["frame_indices"]) == len(row["timestamps"]) == 4
        assert frames_of(row).any()


def test_the_run_finishes_with_rows_failed(failure_run):
    summary = failure_run["summary"]
    assert failure_run["exit_code"] == 3
    assert summary["rows_ok"] == 4 and summary["rows_failed"] == KINDS
    assert (summary["shards_pending"] == 0
            and summary["shards_committed"] == summary["shards_total"] == -(-(KINDS + 4) // 7))


def test_path_like_ids_are_ids_and_only_empty_or_nul_ids_fail(tmp_path, sample_clips):
    """Preprocess never makes a path of an id, so manifests may use paths as ids."""
    clip = sample_clips["testsrc_h264_3s.mp4"]
    ids = ["kinetics/train/abc.mp4", "..", "C:\\videos\\a.mp4", "/abs/ü é.mp4", "", "a\0b"]
    manifest = write_manifest(str(tmp_path / "m.parquet"), {"id": ids, "uri": [clip] * len(ids)})
    values = {"output": str(tmp_path / "out"), "num_frames": 2, "size": "16x16", "workers": 1, "progress": "off"}
    run_preprocess(build_options(manifest=manifest, values=values))
    rows = read_output(str(tmp_path / "out"))
    assert [r["id"] for r in rows] == ids
    assert [r["status"] for r in rows] == ["ok"] * 4 + ["failed"] * 2, [r["error"] for r in rows]
    rule = "is not allowed: ids must be non-empty and contain no NUL character; fix the manifest's id column"
    assert [r["error"] for r in rows[4:]] == [f"id '' {rule}", f"id 'a\\x00b' {rule}"]


# The error kind each bad input's row must carry (videoproc.common.errors.ERROR_KINDS); the
# remote, URI-rule and bomb rows are checked by their group below.
EXPECTED_KINDS = {
    "corrupt": "video.unreadable", "missing": "source.not_found", "directory": "source.refused",
    "zero-bytes": "video.unreadable", "text": "video.unreadable", "png": "video.invalid",
    "truncated": "video.unreadable", "data-wrong-type": "source.refused", "data-bad-base64": "source.refused",
    "audio-only": "video.invalid", "oversize": "video.too_large", "nul\0id": "video.invalid",
    "crash": "worker.crashed", "hang": "worker.timeout", "http-404": "source.not_found", "http-refused": "source.read",
    "http-timeout": "source.read", "http-private": "source.refused", "http-metadata": "source.refused",
    "": "video.invalid", **{f"{table}-bomb": "video.invalid" for table in TABLES},
}


def test_each_failed_row_carries_its_error_kind(failure_run):
    kinds = {r["id"]: r["error_kind"] for r in failure_run["rows"]}
    uri_rules = {row_id for row_id, _, _ in failure_run["bad"]} - set(EXPECTED_KINDS)
    assert {row_id: kinds[row_id] for row_id in EXPECTED_KINDS} == EXPECTED_KINDS
    assert {kinds[row_id] for row_id in uri_rules} == {"source.refused"}, uri_rules
    assert all(kinds[row_id] is None for row_id in kinds if row_id.startswith("good-"))


def test_the_summary_counts_failures_by_kind_with_an_example(failure_run):
    summary = failure_run["summary"]
    expected = collections.Counter(r["error_kind"] for r in failure_run["rows"] if r["status"] == "failed")
    assert summary["top_errors"] == dict(expected.most_common(10))
    assert set(summary["top_errors"]) <= set(ERROR_KINDS)
    for kind, example in summary["error_examples"].items():  # a real message of a row of that kind
        assert example in {r["error"] for r in failure_run["rows"] if r["error_kind"] == kind}
    assert set(summary["error_examples"]) == set(summary["top_errors"])
