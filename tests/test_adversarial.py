"""Hostile manifests and queues: every case ends as exactly one failed row (or record) whose message
names the rule and the fix, in a worker whose memory stays under its ceiling, and nothing outside
the allowed roots is read.

The preprocess cases go through ONE real run with two workers, under --local-root, --allowed-prefixes,
--allow-private-hosts and a --worker-memory ceiling, with the run's output inside the root. Each
worker runs tests.hooks.auditing_job, which reports per row the worker's peak resident memory, its
ceiling and every path the worker opened (the interpreter's `open` audit event), so "nothing outside
the roots was read" is checked on what the workers really did, not on what the code intends. The
HTTP test server's request log shows what reached it. Addresses that are not loopback are refused
before any connection: nothing here dials anything but 127.0.0.1.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

import pytest

from tests import hooks
from tests.conftest import REAL_DIR
from tests.helpers import read_output, write_manifest
from tests.hooks import status_bytes
from tests.mp4bombs import BOMB_BASE, TABLES, make_bomb
from tests.servers.http_server import HttpTestServer
from tests.test_bombs import HUGE_CODED_SIZE
from videoproc.common.errors import ResumeError
from videoproc.preprocess import executor
from videoproc.preprocess.config import build_options
from videoproc.preprocess.job import run_preprocess

WORKER_MEMORY = 512 * 2**20
GUARDED_HOSTS = ["http://169.254.169.254/", "http://[::ffff:169.254.169.254]/", "http://[fec0::1]/",
                 "http://192.0.0.170/", "http://10.0.0.1/"]
BOMB_FIX = "re-encode it from its original, or drop the row"
LOCAL_ROOT_FIX = "local paths must stay inside the root"


def _cases(root: str, outside: str, http, output: str) -> dict[str, tuple[str, list[str]]]:
    """id -> (uri, the texts its error must hold: the rule, then the fix)."""
    cases = {f"{table}-bomb": (os.path.join(root, f"{table}.mp4"), [f"the MP4's {table} table", BOMB_FIX])
             for table in TABLES}
    return cases | {
        "huge-coded-size": (os.path.join(root, "huge.mp4"), [
            "a 16000x16000 stream needs at least", f"--worker-memory {WORKER_MEMORY} bytes",
            "raise --worker-memory if the video is legitimate"]),
        "fifo": (os.path.join(root, "pipe.mp4"), ["is a FIFO (named pipe), not a regular file"]),
        "dev-zero-link": (os.path.join(root, "zero.mp4"),
                          ["resolves to /dev/zero, outside --local-root", LOCAL_ROOT_FIX]),
        "dot-dot": (os.path.join(root, "..", "outside", "canary.mp4"), ["outside --local-root", LOCAL_ROOT_FIX]),
        "symlink-out": (os.path.join(root, "canary.mp4"), ["outside --local-root", LOCAL_ROOT_FIX]),
        "file-uri-out": (f"file://{outside}/canary.mp4", ["outside --local-root", LOCAL_ROOT_FIX]),
        "no-slashes": ("s3:x/outside.mp4", ["has the scheme 's3' but no '//' after it"]),
        "chained": (f"s3://b/k.mp4::{http.url('files/clip.mp4')}", ["contains '::', which chains a second protocol"]),
        "metadata": ("http://169.254.169.254/latest/meta-data", ["169.254.169.254", "--allow-private-hosts"]),
        "mapped-metadata": ("http://[::ffff:169.254.169.254]/v.mp4", ["169.254.169.254", "--allow-private-hosts"]),
        "site-local-v6": ("http://[fec0::1]/v.mp4", ["fec0::1", "--allow-private-hosts"]),
        "ietf-protocol-v4": ("http://192.0.0.170/v.mp4", ["192.0.0.170", "--allow-private-hosts"]),
        "private-10": ("http://10.0.0.1/v.mp4", ["10.0.0.1", "--allow-private-hosts"]),
        "http-outside-prefix": (http.url("files/secret.mp4"), ["--allowed-prefixes"]),
        "bucket-outside-prefix": ("s3://other-bucket/v.mp4", ["--allowed-prefixes"]),
        "own-output": (os.path.join(output, "_videoproc", "run.json"), [f"is inside this run's own output ({output})"]),
        "nul\0id": (os.path.join(root, "good.mp4"), ["contain no NUL character", "fix the manifest's id column"]),
        "": (os.path.join(root, "good.mp4"), ["ids must be non-empty", "fix the manifest's id column"]),
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory, clip_factory) -> dict[str, str]:
    """root/ holds what rows may read (and the output); outside/ holds a canary no row may read."""
    base = tmp_path_factory.mktemp("adversarial")
    root, outside = str(base / "root"), str(base / "outside")
    os.makedirs(root)
    os.makedirs(outside)
    good = clip_factory(BOMB_BASE)
    shutil.copy(good, os.path.join(root, "good.mp4"))
    shutil.copy(os.path.join(REAL_DIR, "carphone_pristine.mp4"), os.path.join(outside, "canary.mp4"))
    with open(good, "rb") as f:
        clip = f.read()
    for table in TABLES:
        with open(os.path.join(root, f"{table}.mp4"), "wb") as f:
            f.write(make_bomb(clip, table))
    shutil.copy(clip_factory(HUGE_CODED_SIZE), os.path.join(root, "huge.mp4"))
    os.mkfifo(os.path.join(root, "pipe.mp4"))
    os.symlink("/dev/zero", os.path.join(root, "zero.mp4"))
    os.symlink(os.path.join(outside, "canary.mp4"), os.path.join(root, "canary.mp4"))
    return {"root": root, "outside": outside, "base": str(base)}


@pytest.fixture(scope="module")
def http_server():
    clip = os.path.join(REAL_DIR, "carphone_pristine.mp4")
    with HttpTestServer({"clip.mp4": clip, "secret.mp4": clip}) as server:
        yield server


@pytest.fixture(scope="module")
def adversarial_run(tree, http_server):
    root = tree["root"]
    output = os.path.join(root, "out")
    cases = _cases(root, tree["outside"], http_server, output)
    good = {"good-local": os.path.join(root, "good.mp4"), "good-http": http_server.url("files/clip.mp4"),
            "kinetics/train/abc.mp4": os.path.join(root, "good.mp4")}
    rows = list(good.items()) + [(case_id, uri) for case_id, (uri, _) in cases.items()]
    manifest = write_manifest(os.path.join(tree["base"], "manifest.parquet"),
                              {"id": [r[0] for r in rows], "uri": [r[1] for r in rows]})
    values = {
        "output": output, "workers": 2, "decoder_threads": 1, "num_frames": 2, "size": "32x32",
        "max_alloc": 2**31, "worker_memory": WORKER_MEMORY, "timeout": 60, "progress": "off", "shard_size": 8,
        # The refused addresses are inside the prefixes, so that the address guard is what refuses them.
        "local_root": root, "allowed_prefixes": ",".join([root, http_server.url("files/clip.mp4"), *GUARDED_HOSTS]),
        "allow_private_hosts": f"127.0.0.1:{http_server.port}", "http_retries": 0,
    }
    reports = os.path.join(tree["base"], "reports")
    os.makedirs(reports)
    saved = executor.VIDEO_JOB
    executor.VIDEO_JOB = functools.partial(hooks.auditing_job, report_dir=reports)
    try:
        report = run_preprocess(build_options(manifest=manifest, values=values))
    finally:
        executor.VIDEO_JOB = saved
    per_row = [json.loads(Path(reports, name).read_text()) for name in os.listdir(reports)]
    return {"report": report, "rows": read_output(output), "cases": cases, "good": good, "per_row": per_row,
            "requests": [r.path for r in http_server.requests], "tree": tree}


def test_every_row_gives_exactly_one_output_row(adversarial_run):
    ids = [r["id"] for r in adversarial_run["rows"]]
    assert sorted(ids) == sorted([*adversarial_run["good"], *adversarial_run["cases"]])
    assert adversarial_run["report"].exit_code == 3  # finished, some rows failed


def test_the_good_rows_are_ok(adversarial_run):
    rows = {r["id"]: r for r in adversarial_run["rows"]}
    for row_id in adversarial_run["good"]:  # a path-like id is an id like any other
        assert rows[row_id]["status"] == "ok", rows[row_id]["error"]


class _Nowhere:
    """Stands in for the server when only the case names are needed (at collection)."""

    port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:0/{path}"


CASE_IDS = list(_cases("/r", "/o", _Nowhere(), "/out"))


@pytest.mark.parametrize("case", CASE_IDS, ids=repr)
def test_each_case_is_one_failed_row_naming_the_rule_and_the_fix(adversarial_run, case):
    (row,) = [r for r in adversarial_run["rows"] if r["id"] == case]
    assert row["status"] == "failed" and row["frames"] is None
    for text in adversarial_run["cases"][case][1]:
        assert text in row["error"], row["error"]


def test_every_worker_stayed_under_its_ceiling(adversarial_run):
    per_row = adversarial_run["per_row"]
    assert len(per_row) == len(adversarial_run["rows"])
    for entry in per_row:
        assert entry["ceiling"] == WORKER_MEMORY
        assert entry["peak_rss"] < WORKER_MEMORY, entry["id"]
        if entry["id"].endswith("-bomb"):
            assert entry["peak_rss"] < 200 * 2**20, entry["id"]  # nothing table-sized was built


def test_nothing_outside_the_roots_was_read(adversarial_run):
    tree = adversarial_run["tree"]
    opened = {path for entry in adversarial_run["per_row"] for path in entry["opened"]}
    inside_test_tree = {p for p in opened if p.startswith(tree["base"])}
    assert inside_test_tree, "the audit hook saw no row open a file"
    root = os.path.realpath(tree["root"])
    assert all(os.path.realpath(p).startswith(root + os.sep) for p in inside_test_tree), inside_test_tree
    assert "/dev/zero" not in opened
    assert not any(p.startswith(os.path.join(root, "out")) for p in opened)  # the run's own output
    requests = adversarial_run["requests"]
    assert requests and all(r == "/files/clip.mp4" for r in requests), requests


def test_an_edited_pass_through_column_refuses_the_resume(tmp_path):
    clip = os.path.join(REAL_DIR, "carphone_pristine.mp4")
    values = {"output": str(tmp_path / "out"), "num_frames": 1, "size": "16x16", "progress": "off", "workers": 1}
    first = write_manifest(str(tmp_path / "a.parquet"), {"id": ["a"], "uri": [clip], "caption": ["a car"]})
    assert run_preprocess(build_options(manifest=first, values=values)).exit_code == 0
    edited = write_manifest(str(tmp_path / "b.parquet"), {"id": ["a"], "uri": [clip], "caption": ["a cat"]})
    with pytest.raises(ResumeError, match=r"columns\.caption\.sha256 was .*--overwrite"):
        run_preprocess(build_options(manifest=edited, values=values))


@pytest.mark.timeout(300)
def test_each_hostile_queue_row_is_one_failed_record(tmp_path):
    """The generation queue: references under the source rules, exact seeds, and records that stay
    one per current queue row after a fix changes a row's derived id."""
    from tests.generate.gen_helpers import read_records, run_queue, write_queue
    from videoproc.generate.options import ReferenceRules

    root = tmp_path / "refs"
    root.mkdir()
    os.mkfifo(root / "pipe.png")
    os.symlink("/dev/zero", root / "zero.png")
    cases = {
        "zero": (dict(input_reference=str(root / "zero.png")), "outside --local-root"),
        "fifo": (dict(input_reference="pipe.png"), "is a FIFO (named pipe), not a regular file"),
        "no-slashes": (dict(input_reference="s3:x/a.png"), "has the scheme 's3' but no '//' after it"),
        "chained": (dict(input_reference="s3://b/k.png::http://127.0.0.1/x"), "contains '::'"),
        "metadata": (dict(input_reference="http://169.254.169.254/a.png"), "169.254.169.254"),
        "seed-float": (dict(seed=float(2**60)), "is not an exact whole number 0..18446744073709551615"),
        "seed-negative": (dict(seed=-1.0), "is not an exact whole number 0..18446744073709551615"),
    }
    rows = [dict(id=key, prompt="p", size="32x32", num_frames=5, num_inference_steps=1, **fields)
            for key, (fields, _) in cases.items()]
    typo = dict(prompt="typo row", size="32x3z", num_frames=5, num_inference_steps=1, seed=1)
    queue = write_queue(tmp_path / "q.parquet", [*rows, typo])
    rules = ReferenceRules(local_root=str(root), max_bytes=2**20)
    # A queue whose seed column holds text: one failed record naming the value. Run first, so that
    # the libraries and the model are loaded before memory is measured over the hostile queue.
    text_seeds = write_queue(tmp_path / "t.parquet", [dict(id="seed-text", prompt="p", seed="42")])
    run_queue(text_seeds, tmp_path / "text-out", references=rules)
    (record,) = read_records(tmp_path / "text-out")
    assert record["status"] == "failed"
    assert "seed '42' is not an exact whole number 0..18446744073709551615" in record["error"]
    # The peak over this run alone: writing 5 to clear_refs resets VmHWM to the current RSS (a
    # process-lifetime peak would already hold whatever earlier tests in this process needed).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_bytes("VmRSS")
    run_queue(queue, tmp_path / "out", references=rules)
    grown = status_bytes("VmHWM") - before
    records = {r["id"]: r for r in read_records(tmp_path / "out")}
    for key, (_, message) in cases.items():
        assert records[key]["status"] == "failed" and message in records[key]["error"], records[key]["error"]
    assert grown < 64 * 2**20, grown  # /dev/zero and the FIFO were never read into memory
    typo_row = len(rows)
    assert [r["status"] for r in records.values() if r["queue_row"] == typo_row] == ["failed"]
    fixed = write_queue(tmp_path / "q.parquet", [*rows, typo | dict(size="32x32")])
    run_queue(fixed, tmp_path / "out", references=rules)
    after = [r for r in read_records(tmp_path / "out") if r["queue_row"] == typo_row]
    assert [r["status"] for r in after] == ["completed"]  # one record for the row, the current one
    assert len(read_records(tmp_path / "out")) == len(rows) + 1
