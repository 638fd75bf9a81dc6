"""A real two-node Ray cluster on this machine, on 127.0.0.1 only, for the Ray executor's tests.

Each node is one `ray start --block` process that this module starts in a new session; every
daemon of the node (raylet, GCS, agents, log monitor, and the workers the raylet forks) descends
from it. So a node is stopped, or killed to simulate losing a machine, by walking its process tree
and signalling those PIDs, never by matching process names, which could hit someone else's Ray.

Ray reaches out to the network unless told not to, so every node runs with:
  RAY_USAGE_STATS_ENABLED=0   no usage reports;
  HOME=<temp>/home holding ray_bootstrap_config.yaml with `provider: {type: local}`, without which
                              the dashboard probes cloud metadata addresses (169.254.169.254);
  RAY_AUTH_MODE=disabled      no token written under ~/.ray;
  RAY_worker_niceness=0       workers otherwise run at niceness 15 and starve on a busy machine;
an explicit --object-store-memory (two nodes would each claim 30 % of RAM), a short --temp-dir
(Unix socket paths are capped near 107 bytes), no dashboard, and LAUNCHER, which keeps `ray start`
from trading 127.0.0.1 for the machine's public address. Every connection stays on loopback
(checked by `foreign_connections`).

The driver (the test process, or a CLI it runs) additionally needs DRIVER_ENV; the session fixture
`ray_cluster` sets it while the cluster runs. The fixture skips when Ray is not importable, except
under CI, where it fails instead. Import it into a test module to use it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.servers.fixtures import in_ci

OBJECT_STORE_BYTES = 200 * 2**20
NODE_START_TIMEOUT_S = 120
STOP_GRACE_S = 5.0
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_worker_niceness": "0",
    # Node loss is noticed after period x threshold; the defaults (3 s x 5) would make the
    # node-kill test wait tens of seconds for a dead node to be declared dead.
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
# The driver joins with 127.0.0.1:PORT; without this it would swap that for the public interface
# address too (see LAUNCHER). The nodes cannot use it: it also forbids joining a cluster.
DRIVER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
BOOTSTRAP_CONFIG = "provider:\n  type: local\n"
# `ray start` swaps 127.0.0.1 for "the address other machines reach this one at", which it finds by
# asking the routing table how it would reach 8.8.8.8, so both nodes would register (and talk to
# each other) on the machine's public interface. RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 avoids the
# swap but also forbids worker nodes, so the node launcher answers that one question with loopback.
LAUNCHER = (
    "import sys; from ray._private import services; "
    "services.node_ip_address_from_perspective = lambda address=None: '127.0.0.1'; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())"
)


@dataclass(kw_only=True)
class RayNode:
    """One `ray start --block` process and the node it runs."""

    name: str
    process: subprocess.Popen
    log: str


@dataclass(kw_only=True)
class RayCluster:
    """The running cluster: `address` is what `ray.init(address=...)` and --ray-address take."""

    root: str
    port: int
    env: dict[str, str]
    head: RayNode | None = None
    workers: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_worker(self) -> RayNode:
        """Start one more 1-CPU node that joins the head; returns once the node is up."""
        name = f"worker{len(self.workers) + 1}"
        node = _start_node(self, name, ["--address", self.address])
        self.workers.append(node)
        return node

    def kill_node(self, node: RayNode) -> None:
        """Lose a machine: SIGKILL every process of the node at once, with no chance to clean up."""
        _kill_tree(node.process.pid, signal.SIGKILL)
        node.process.wait(timeout=10)
        if node in self.workers:
            self.workers.remove(node)

    def node_pids(self, node: RayNode) -> list[int]:
        return _descendants(node.process.pid)

    def all_pids(self) -> list[int]:
        nodes = [n for n in [self.head, *self.workers] if n is not None]
        return [pid for n in nodes for pid in _descendants(n.process.pid)]

    def driver_env(self) -> dict[str, str]:
        """The environment a driver process needs to join this cluster on loopback only."""
        return {k: self.env[k] for k in (*RAY_ENV, "HOME")} | DRIVER_ENV

    def stop(self) -> None:
        """Stop every node by PID: TERM, then KILL what is still alive after a grace period."""
        for node in [*self.workers, *([self.head] if self.head else [])]:
            _stop_tree(node.process)
        self.workers = []
        self.head = None


def ray_importable() -> str | None:
    """None when Ray is installed, else why the Ray tests cannot run. Looks without importing:
    Ray reads DRIVER_ENV once, at import."""
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed; install it with pip install 'videoproc[ray]'"
    return None


def start_cluster(root: str, *, workers: int = 1, env: dict[str, str] | None = None) -> RayCluster:
    """A head node plus `workers` worker nodes, 1 CPU each, with all state under `root`; `env` is
    added to the nodes' environment (their workers inherit it)."""
    home = os.path.join(root, "home")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "ray_bootstrap_config.yaml"), "w") as f:
        f.write(BOOTSTRAP_CONFIG)
    node_env = os.environ | RAY_ENV | (env or {}) | {"HOME": home}
    # A driver setting left by an earlier cluster of this session would stop worker nodes joining.
    for key in ("RAY_ADDRESS", *DRIVER_ENV):
        node_env.pop(key, None)
    cluster = RayCluster(root=root, port=_free_port(), env=node_env)
    try:
        cluster.head = _start_node(
            cluster, "head",
            ["--head", f"--port={cluster.port}", "--include-dashboard=false",
             f"--temp-dir={os.path.join(root, 't')}"],
        )
        for _ in range(workers):
            cluster.add_worker()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A two-node cluster for the whole session; the driver (this process) gets DRIVER_ENV and the
    RAY_* settings while it runs, and everything started is stopped at the end."""
    reason = ray_importable()
    if reason is not None:
        if in_ci():
            pytest.fail(f"{reason} (CI is set, where the Ray tests must run, not skip)", pytrace=False)
        pytest.skip(reason)
    root = tempfile.mkdtemp(prefix="vp-ray-", dir="/tmp")
    cluster = start_cluster(root)
    with pytest.MonkeyPatch.context() as patch:
        # HOME stays: it matters to the nodes' daemons, not to a driver, and the session's other
        # tests may rely on it (caches under ~/.cache).
        for key, value in cluster.driver_env().items():
            if key != "HOME":
                patch.setenv(key, value)
        # In case Ray was imported before the variable was set (it reads it once, at import).
        from ray._private import ray_constants

        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        patch.delenv("RAY_ADDRESS", raising=False)
        try:
            yield cluster
        finally:
            _disconnect_driver()
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)


def foreign_connections(pids: list[int]) -> list[str]:
    """TCP connections of these processes whose far end is not a loopback address, as text."""
    inodes = _socket_inodes(pids)
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in _read(table).splitlines()[1:]:
            fields = line.split()
            remote, inode = fields[2], fields[9]
            if inode in inodes and not _loopback_or_unset(remote.split(":")[0]):
                found.append(f"{table}: {fields[1]} -> {remote} (state {fields[3]})")
    return found


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    return inodes


def _loopback_or_unset(hex_addr: str) -> bool:
    # /proc/net/tcp writes addresses as host-order hex words: 0100007F is 127.0.0.1.
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return raw[3] == 127 or raw == bytes(4)
    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
    addr = b"".join(words)
    if addr == bytes(16) or addr == bytes(15) + b"\x01":
        return True
    return addr[:12] == bytes(10) + b"\xff\xff" and addr[12] == 127


def _start_node(cluster: RayCluster, name: str, args: list[str]) -> RayNode:
    log = os.path.join(cluster.root, f"{name}.log")
    cmd = [
        sys.executable, "-c", LAUNCHER, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
        "--num-gpus=0", f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats", *args,
    ]
    with open(log, "wb") as out:
        # A new session keeps the node out of pytest's process group (Ctrl-C reaches the driver
        # only) and makes the node's tree easy to tell apart from everything else.
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=cluster.env, cwd=cluster.root, start_new_session=True
        )
    node = RayNode(name=name, process=process, log=log)
    _wait_started(node)
    return node


def _wait_started(node: RayNode) -> None:
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = _read(node.log)
        if "Ray runtime started" in text:
            return
        if node.process.poll() is not None:
            raise RuntimeError(f"ray node {node.name} exited with code {node.process.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    _stop_tree(node.process)
    raise RuntimeError(f"ray node {node.name} did not start within {NODE_START_TIMEOUT_S} s:\n"
                       f"{_read(node.log)[-3000:]}")


def _stop_tree(process: subprocess.Popen) -> None:
    _kill_tree(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and _descendants(process.pid, include_root=False):
        time.sleep(0.2)
    # Daemons may ignore SIGTERM for 20 s or more; what is left goes now.
    _kill_tree(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _kill_tree(root: int, sig: int) -> None:
    """Signal `root` and all its descendants. SIGSTOP first freezes the tree so that nothing can
    fork or be re-parented (losing its link to `root`) between the listing and the signal."""
    seen: set[int] = set()
    while True:
        fresh = [p for p in _descendants(root) if p not in seen]
        if not fresh:
            break
        for pid in fresh:
            _signal(pid, signal.SIGSTOP)
        seen.update(fresh)
    for pid in seen:
        _signal(pid, sig)
        _signal(pid, signal.SIGCONT)


def _descendants(root: int, *, include_root: bool = True) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        ppid = _ppid(int(entry))
        if ppid is not None:
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    if not include_root or not os.path.exists(f"/proc/{root}"):
        found.remove(root)
    return found


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; the fields after its last ')' don't.
    fields = stat.rsplit(")", 1)[1].split()
    state, ppid = fields[0], int(fields[1])
    return None if state == "Z" else ppid


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _disconnect_driver() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def process_cmdline(pid: int) -> bytes:
    """The raw command line of a process ("" once it is gone): how tests pick Ray's processes."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
