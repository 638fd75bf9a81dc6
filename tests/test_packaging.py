"""`pip install .` without extras, in a fresh virtual environment: working `videoproc preprocess`
and `videoproc inspect` with no torch, and no top-level `jobs` package installed beside them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REAL_DIR
from tests.helpers import read_output, write_manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a build of the checkout reads; jobs/ goes along to show that it is left out of the install.
SOURCES = ["pyproject.toml", "README.md", "videoproc", "jobs"]


def _run(*cmd: str, cwd: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # Without PYTHONPATH, nothing of the checkout is importable: only what pip installed runs.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _copy_checkout(target) -> str:
    """The files a build reads, without build/ or egg-info left in the checkout by the build."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    target.mkdir()
    for name in SOURCES:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy(source, target / name)
    return str(target)


@pytest.mark.slow
def test_pip_install_without_extras_runs_preprocess_without_torch(tmp_path):
    source = _copy_checkout(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, work = str(venv / "bin" / "python"), str(tmp_path)
    install = _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source, cwd=work)
    assert install.returncode == 0, install.stderr[-4000:]

    no_torch = _run(python, "-c", "import torch", cwd=work)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    no_jobs = _run(python, "-c", "import jobs", cwd=work)
    assert no_jobs.returncode != 0 and "No module named 'jobs'" in no_jobs.stderr
    where = _run(python, "-c", "import videoproc; print(videoproc.__file__)", cwd=work)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr

    manifest = write_manifest(str(tmp_path / "m.parquet"), {"uri": [os.path.join(REAL_DIR, "carphone_pristine.mp4")]})
    output = str(tmp_path / "out")
    args = ["--output", output, "--num-frames", "4", "--size", "32x24", "--workers", "1", "--progress", "off"]
    run = _run(str(venv / "bin" / "videoproc"), "preprocess", manifest, *args, cwd=work)
    assert run.returncode == 0, run.stderr
    assert "rows: 1 total, 1 ok, 0 failed" in run.stdout
    (row,) = read_output(output)
    assert row["status"] == "ok" and row["shape"] == [4, 24, 32, 3]
    # `inspect` draws with Pillow, a core dependency.
    sheet = str(tmp_path / "sheet.png")
    inspect = _run(str(venv / "bin" / "videoproc"), "inspect", output, "--sheet", sheet, cwd=work)
    assert inspect.returncode == 0, inspect.stderr
    with open(sheet, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
