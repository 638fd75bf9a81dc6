"""Real S3 servers for tests: a Ceph RADOS Gateway (the production server) and moto (fast).

Both listen on 127.0.0.1 only. `start_ceph` runs `ceph_rgw.sh` beside this file; `start_moto`
runs moto's server in a thread of this process. `stop` stops either.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CEPH_SCRIPT = Path(__file__).with_name("ceph_rgw.sh")
CEPH_BINARIES = ("ceph", "ceph-authtool", "monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin")
CEPH_ACCESS_KEY = "videoproc-test-access"
CEPH_SECRET_KEY = "videoproc-test-secret"
MOTO_ACCESS_KEY = "testing"
MOTO_SECRET_KEY = "testing"
# Generous: the script allows 90 s per step, and a 2-core CI machine can take several times the
# ~12 s a fast one needs.
CEPH_START_TIMEOUT_S = 300
CEPH_STOP_TIMEOUT_S = 60

# botocore and pyarrow send uploads as aws-chunked with a trailing checksum by default, which
# Ceph RGW rejects (411 MissingContentLength) and some servers store verbatim; moto accepts it.
_CHECKSUM_CONFIG = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
}

# endpoint_url -> how to stop that server; lets `stop` take the frozen S3Server alone.
_STOPPERS: dict[str, Callable[[], None]] = {}


@dataclass(frozen=True, kw_only=True)
class S3Server:
    """A running S3 endpoint and the credentials of its one test user."""

    endpoint_url: str
    access_key: str
    secret_key: str
    kind: Literal["ceph", "moto"]


def ceph_available() -> str | None:
    """None when the Ceph binaries are on PATH, else the reason the Ceph tests cannot run."""
    missing = [name for name in CEPH_BINARIES if shutil.which(name) is None]
    if not missing:
        return None
    return (
        f"Ceph binaries not found on PATH: {', '.join(missing)}; install them with `make s3-deps`"
        " (runs tests/servers/install-ceph.sh as root)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ceph(tmpdir: str | os.PathLike[str]) -> S3Server:
    """Start mon, OSD and gateway with all state under `tmpdir` (keep the path short: the
    daemons' Unix sockets live there and socket paths are capped near 107 bytes).

    The cluster also stops by itself when this process exits, should `stop` never run.
    Raises RuntimeError with the daemons' log tails when the cluster does not come up, after
    stopping whatever did start.
    """
    state_dir = Path(tmpdir).resolve()
    port = free_port()
    try:
        _run_ceph_script(["start", str(state_dir), str(port)], _ceph_script_env(), CEPH_START_TIMEOUT_S, state_dir)
    except BaseException:
        # A timeout kills only the script; the daemons it launched are still listed in pids.
        stop_ceph(state_dir)
        raise
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{port}", access_key=CEPH_ACCESS_KEY, secret_key=CEPH_SECRET_KEY, kind="ceph"
    )
    _STOPPERS[server.endpoint_url] = lambda: stop_ceph(state_dir)
    return server


def stop_ceph(state_dir: str | os.PathLike[str]) -> None:
    """Stop the daemons recorded in `state_dir`/pids (TERM, then KILL after 5 s)."""
    _run_ceph_script(["stop", str(state_dir)], dict(os.environ), CEPH_STOP_TIMEOUT_S, Path(state_dir))


def _ceph_script_env() -> dict[str, str]:
    return {
        **os.environ,
        "CEPH_MON_PORT": str(free_port()),
        "CEPH_RGW_ACCESS_KEY": CEPH_ACCESS_KEY,
        "CEPH_RGW_SECRET_KEY": CEPH_SECRET_KEY,
        "CEPH_RGW_OWNER_PID": str(os.getpid()),
    }


def _run_ceph_script(args: list[str], env: dict[str, str], timeout_s: float, state_dir: Path) -> None:
    command = ["bash", str(CEPH_SCRIPT), *args]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        message = f"`{' '.join(command)}` did not finish within {timeout_s} s; logs are in {state_dir}/log"
        raise RuntimeError(message) from exc
    if result.returncode != 0:
        output = f"{result.stdout}{result.stderr}"
        raise RuntimeError(f"`{' '.join(command)}` failed with exit status {result.returncode}:\n{output}")


def start_moto() -> S3Server:
    """Start moto's S3 server in a thread of this process, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    host, port = moto_server.get_host_and_port()
    server = S3Server(
        endpoint_url=f"http://{host}:{port}", access_key=MOTO_ACCESS_KEY, secret_key=MOTO_SECRET_KEY, kind="moto"
    )
    _STOPPERS[server.endpoint_url] = moto_server.stop
    return server


def stop(server: S3Server) -> None:
    """Stop a server started by `start_ceph` or `start_moto`; a second call does nothing."""
    stopper = _STOPPERS.pop(server.endpoint_url, None)
    if stopper is not None:
        stopper()


def storage_options(server: S3Server) -> dict:
    """fsspec/s3fs options for `server`. No region_name: Ceph rejects a bucket create that names one."""
    return {
        "key": server.access_key,
        "secret": server.secret_key,
        "client_kwargs": {"endpoint_url": server.endpoint_url},
        "config_kwargs": dict(_CHECKSUM_CONFIG),
    }


def env(server: S3Server) -> dict[str, str]:
    """Environment variables that point a subprocess's botocore/s3fs clients at `server`.

    Merge into the current environment: `subprocess.run(..., env={**os.environ, **env(server)})`.
    pyarrow's own S3FileSystem reads the keys and the checksum setting from here but ignores
    AWS_ENDPOINT_URL: give it `endpoint_override` explicitly.
    """
    return {
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_ENDPOINT_URL": server.endpoint_url,
        "AWS_ENDPOINT_URL_S3": server.endpoint_url,
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        # Without these the SDKs may read a developer's ~/.aws profile or probe EC2 metadata
        # for seconds before failing over to the variables above.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def make_bucket(server: S3Server, name: str) -> None:
    """Create bucket `name` (3-63 lowercase letters, digits, hyphens); an existing one is kept."""
    import s3fs

    filesystem = s3fs.S3FileSystem(**storage_options(server), skip_instance_cache=True)
    if not filesystem.exists(name):
        filesystem.mkdir(name)
