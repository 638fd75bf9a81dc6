"""One runner per output folder."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys

import pytest

from videoproc.generate.lock import OutputLocked, output_lock
from videoproc.storage import locate


def write_lock(folder, **holder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".lock").write_text(json.dumps({"since": "earlier", **holder}))


def test_lock_is_taken_and_released(tmp_path):
    with output_lock(locate(str(tmp_path / "out"))) as mine:
        assert json.loads((tmp_path / "out/.lock").read_text())["pid"] == os.getpid() == mine["pid"]
    assert not (tmp_path / "out/.lock").exists()


def test_second_runner_is_refused(tmp_path):
    out = locate(str(tmp_path / "out"))
    with output_lock(out):
        with pytest.raises(OutputLocked, match=rf"is locked by pid {os.getpid()} on host .*another generate run "
                                               r"is writing there.*or delete .*\.lock if that run is gone"):
            with output_lock(out):
                pass
    assert not (tmp_path / "out/.lock").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock(tmp_path / "out", host=socket.gethostname(), pid=dead.pid)
    log = io.StringIO()
    with output_lock(locate(str(tmp_path / "out")), log=log):
        pass
    assert f"taking over the lock on {tmp_path / 'out' / '.lock'}: its holder, pid {dead.pid}" in log.getvalue()


def test_lock_from_another_host_is_respected(tmp_path):
    write_lock(tmp_path / "out", host="some-other-host", pid=1)
    with pytest.raises(OutputLocked, match=r"locked by pid 1 on host some-other-host since earlier"):
        with output_lock(locate(str(tmp_path / "out"))):
            pass


def test_lock_on_object_storage():
    out = locate("memory://lock-test/out")
    with output_lock(out):
        with pytest.raises(OutputLocked, match=r"is locked by pid"):
            with output_lock(out):
                pass
