"""Joining a Ray cluster, shared by both stages' Ray executors: import Ray with a clear error when
the extra is missing, fail fast on an address nobody listens at, and connect once per process."""

from __future__ import annotations

import socket
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
