"""Session-scoped pytest fixtures for the S3 servers in `tests.servers.s3`.

`ceph_s3` skips when the Ceph binaries are missing, except under CI, where a skip would hide a
broken runner and so fails instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.servers import s3

# Unix socket paths are capped near 107 bytes and the daemons put theirs in the state folder.
_SHORT_TMP_LIMIT = 40


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_ceph() -> None:
    reason = s3.ceph_available()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI is set, where the Ceph tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def _short_tmp_root() -> str:
    root = tempfile.gettempdir()
    return root if len(root) <= _SHORT_TMP_LIMIT else "/tmp"


@pytest.fixture(scope="session")
def ceph_s3() -> Iterator[s3.S3Server]:
    """A Ceph RADOS Gateway on 127.0.0.1 for the whole session, stopped at the end."""
    _require_ceph()
    state_dir = tempfile.mkdtemp(prefix="vp-ceph-", dir=_short_tmp_root())
    try:
        server = s3.start_ceph(state_dir)
        try:
            yield server
        finally:
            s3.stop(server)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[s3.S3Server]:
    """moto's S3 server on 127.0.0.1, in this process, for the whole session."""
    server = s3.start_moto()
    try:
        yield server
    finally:
        s3.stop(server)
