"""Joining a Ray cluster, shared by both stages' Ray executors: import Ray with a clear error when
the extra is missing, fail fast on an address nobody listens at, and connect once per process; and
the two checks both make on the nodes' view of the driver's files (its working folder, and a local
--output every node must share). Their schedulers stay their own: a task per shard in preprocess,
an actor pull loop in generate."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from videoproc.common.errors import OptionsError

# ray.init waits minutes on an address where nothing listens; a plain TCP connect answers in seconds.
CONNECT_CHECK_TIMEOUT_S = 10.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise OptionsError(
            f"--executor ray needs Ray, which is not installed here ({exc}); install it with "
            "pip install 'videoproc[ray]' on this machine and every worker node, or use --executor local"
        ) from None
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster unless this process already has; True when this call connected."""
    if ray.is_initialized():
        return False
    _check_reachable(address)
    kwargs = {} if address is None else {"address": address}
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError) as exc:
        raise OptionsError(
            f"cannot connect to the Ray cluster at {address or 'the default address'}: "
            f"{first_line(exc)}; check --ray-address (auto, or the head's HOST:PORT as printed by "
            "`ray start --head`) and that the cluster is running"
        ) from exc
    return True


@contextlib.contextmanager
def joined(address: str | None) -> Iterator[Any]:
    """The `ray` module, connected to the cluster at `address` for the duration; disconnected on
    the way out only when this call connected (a caller already in a cluster stays in it)."""
    ray = import_ray()
    started_here = connect(ray, address)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def enter_driver_folder(folder: str) -> None:
    """Move this process to the driver's working `folder`, so that a relative path (a manifest row,
    an input_reference, a model) names what it names for the driver; Ray workers start in a folder
    of their own. Only for a process private to one task or actor. On a node without that folder
    nothing changes, and such a path fails its row or request as a missing file."""
    if os.path.isdir(folder) and os.getcwd() != folder:
        os.chdir(folder)


def not_shared(written: str, url: str) -> str:
    """Why a file a node wrote to a local --output is missing on the driver, and the fix.
    `written` says what was written, e.g. "shard part-00003 was written by a Ray worker"."""
    return (
        f"{written} but {url} does not exist on the driver: a local --output must be a folder every "
        "node shares (the same path on a shared filesystem); otherwise write to object storage (s3://...)"
    )


def _check_reachable(address: str | None) -> None:
    """Fail fast on a HOST:PORT nobody listens at; other forms (auto, ray://) are Ray's to resolve."""
    if address is None or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_CHECK_TIMEOUT_S):
            return
    except (OSError, ValueError) as exc:
        raise OptionsError(
            f"cannot reach the Ray cluster at {address}: {exc}; --ray-address must be auto or the "
            "head node's HOST:PORT (the GCS port printed by `ray start --head`, 6379 by default), "
            "and the cluster must be running"
        ) from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
