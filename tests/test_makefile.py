"""The Makefile's sample manifest rule: built when missing, stale inputs or a moved checkout rebuild
it, anything else leaves it alone, and `make preprocess` of another manifest never touches it;
`make generate` passes its job file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = "-m jobs.build_manifests"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _make(checkout, *args: str, dry: bool = False) -> str:
    # PY and STAMP point at this interpreter and a fresh stamp, so no environment is installed.
    stamp = checkout.parent / "installed"
    stamp.touch()
    variables = [f"PY={sys.executable}", f"STAMP={stamp}"]
    cmd = ["make", "--no-print-directory", *(["-n"] if dry else []), *variables, *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _checkout(folder):
    """What the rule reads and runs: the Makefile, jobs/, the media, and the library."""
    folder.mkdir()
    shutil.copy(os.path.join(ROOT, "Makefile"), folder)
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), folder)
    shutil.copytree(os.path.join(ROOT, "jobs"), folder / "jobs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(ROOT, "manifests", "media"), folder / "manifests" / "media")
    shutil.copytree(os.path.join(ROOT, "videoproc"), folder / "videoproc", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def _file_uri(checkout) -> str:
    uris = pq.read_table(checkout / "manifests" / "sample.parquet", columns=["uri"]).column("uri").to_pylist()
    (uri,) = [u for u in uris if u.startswith("file://")]
    return uri


def test_sample_manifest_is_built_only_when_stale(tmp_path):
    checkout = _checkout(tmp_path / "a")
    assert BUILD in _make(checkout, "sample-manifest")
    assert _file_uri(checkout).startswith(f"file://{checkout}/manifests/")
    assert BUILD not in _make(checkout, "sample-manifest")  # up to date: no work

    # An input changed after the manifest was built (dated back, as file times may be coarse).
    sample = checkout / "manifests" / "sample.parquet"
    earlier = os.stat(checkout / "jobs" / "build_manifests.py").st_mtime_ns - 10 * 10**9
    os.utime(sample, ns=(earlier, earlier))
    assert BUILD in _make(checkout, "sample-manifest")
    assert BUILD not in _make(checkout, "sample-manifest")

    moved = checkout.rename(tmp_path / "b")  # the file:// row names the old folder
    assert BUILD in _make(moved, "sample-manifest")
    assert _file_uri(moved).startswith(f"file://{moved}/manifests/")
    assert BUILD not in _make(moved, "sample-manifest")


def test_preprocess_of_another_manifest_leaves_the_sample_alone(tmp_path):
    checkout = _checkout(tmp_path / "c")
    lines = _make(checkout, "preprocess", "MANIFEST=s3://bucket/m.parquet", "OUTPUT=out/x", dry=True).splitlines()
    lines = [line.rstrip() for line in lines]
    assert not any(BUILD in line for line in lines)
    assert lines[-1].endswith("-m jobs.preprocess s3://bucket/m.parquet --output out/x --config jobs/preprocess.toml")
    # The bundled sample, missing here, is built first.
    lines = _make(checkout, "preprocess", "ARGS=--fps 2 --max-frames 32", dry=True).splitlines()
    lines = [line.rstrip() for line in lines]
    assert BUILD in lines[0]
    expected = "-m jobs.preprocess manifests/sample.parquet --output out/sample --config jobs/preprocess.toml"
    assert lines[-1].endswith(f"{expected} --fps 2 --max-frames 32")


def test_generate_passes_its_job_file(tmp_path):
    checkout = _checkout(tmp_path / "d")
    lines = [line.rstrip() for line in _make(checkout, "generate", "ARGS=--fit reject", dry=True).splitlines()]
    expected = "-m jobs.generate manifests/prompts.parquet --output out/generated --model tiny-random"
    assert lines[-1].endswith(f"{expected} --config jobs/generate.toml --fit reject")
    lines = _make(checkout, "generate", "GEN_CONFIG=jobs/nightly.toml", "OUTPUT=out/x", dry=True).splitlines()
    assert lines[-1].rstrip().endswith("--output out/x --model tiny-random --config jobs/nightly.toml")
