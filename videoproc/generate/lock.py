"""One runner per output folder: `OUTPUT/.lock` names the host and process that holds it.

Locally the lock is created with O_EXCL, so two runners cannot both take it. On object storage there
is no create-if-absent, so the check and the write are two steps; two runners started within the same
second on one bucket folder could both pass, which the docs say plainly.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import uuid
from typing import Iterator, TextIO

from videoproc.storage import Location, exists, read_json, remove, write_json_atomic


class OutputLocked(RuntimeError):
    """Another live runner holds the output folder."""


@contextlib.contextmanager
def output_lock(out: Location, *, log: TextIO = sys.stderr) -> Iterator[dict]:
    """Hold `OUTPUT/.lock` for the duration; a lock left by a dead process on this host is taken over."""
    loc = out.child(".lock")
    mine = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if not _try_create(loc, mine):
        _take_over_if_stale(loc, log=log)
        if not _try_create(loc, mine):
            _refuse(loc)
    try:
        yield mine
    finally:
        if _holder(loc).get("token") == mine["token"]:
            remove(loc)


def _try_create(loc: Location, content: dict) -> bool:
    if not loc.is_local:
        if exists(loc):
            return False
        write_json_atomic(loc, content)
        return True
    os.makedirs(os.path.dirname(loc.path), exist_ok=True)
    try:
        fd = os.open(loc.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(content, f)
    return True


def _take_over_if_stale(loc: Location, *, log: TextIO) -> None:
    holder = _holder(loc)
    if holder.get("host") != socket.gethostname() or _pid_alive(holder.get("pid")):
        _refuse(loc, holder)
    print(f"taking over the lock on {loc.url}: its holder, pid {holder.get('pid')} on this host "
          f"(since {holder.get('since')}), is no longer running", file=log, flush=True)
    remove(loc)


def _refuse(loc: Location, holder: dict | None = None) -> None:
    holder = holder if holder is not None else _holder(loc)
    raise OutputLocked(
        f"output {loc.url.rsplit('/', 1)[0]} is locked by pid {holder.get('pid')} on host {holder.get('host')} "
        f"since {holder.get('since')}: another generate run is writing there. Wait for it to finish, use "
        f"another --output, or delete {loc.url} if that run is gone"
    )


def _holder(loc: Location) -> dict:
    try:
        content = read_json(loc)
    except (FileNotFoundError, ValueError):  # vanished, or caught half-written
        return {}
    return content if isinstance(content, dict) else {}


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
