"""One writer per output folder: a lock that both stages take before they read or change the output.

The lock is `OUTPUT/.videoproc.lock` (LOCK_NAME). Its content names the holder (host, pid, start
time, stage and an attempt token), so that a refused run can say who holds the folder.

Local folders: a kernel lock. The file is opened (created if absent) and locked with
`flock(LOCK_EX | LOCK_NB)`; the kernel drops the lock when the holder dies, however it dies
(`kill -9`, OOM killer, a container restart), so a re-run gets it at once. The file's content is
information only: an empty or garbled file (a runner killed between creating and writing it), a
file naming this very pid (a container restarted as PID 1) or a pid reused by another program
does not matter, only the kernel lock does. On release the file is removed while still locked; a
runner that opened it just before checks after locking that its descriptor is still the file at
that path, and starts over otherwise, so a removed file can never be locked by two runners.

Object storage (s3://...): a lease. There is no kernel to notice a dead holder, so the lock object
carries an expiry and the live holder renews it.
- Taking it is a conditional create (`PutObject` with `If-None-Match: *`): of two runners creating
  it, the store lets one succeed and answers 412 to the other. Ceph RGW and AWS S3 honour it.
- A daemon thread rewrites the object with a new expiry every lease/3 seconds. Ceph RGW answers
  412 to `If-Match: <etag>` even with the right ETag, so the renewal cannot be a compare-and-swap:
  it reads the object, checks that the token is still its own, and rewrites it. If the token is
  not its own (the lock was broken), or no renewal succeeded within the lease, the lease is lost:
  `Lease.check()` raises LockLost, and both stages call it before every commit, so a run whose
  lock was taken from it stops committing (exit status 5).
- A lock whose expiry has passed (its holder was killed, or lost its network) is taken over by a
  delete, then a conditional create. Two runners taking over at once may both get through the
  create when one deletes the object the other just made, so after every create the taker waits
  SETTLE_S and reads the object again: only the runner whose token is still there proceeds, the
  other is refused. The expiry is the holder's wall clock plus the lease, judged by the taker's
  wall clock, so the machines' clocks must agree to within a few seconds (NTP).
- `break_lock=True` deletes whatever lock is there and takes it, saying whose lock it broke; the
  old holder, if it is still alive, notices at its next renewal and stops committing.

The default lease is DEFAULT_LEASE_S (60 s): a killed run's lock on object storage expires at
most that long after its last renewal. Locally there is no lease: the lock dies with its process.

Why not filelock or portalocker: the lease on object storage (conditional create, renewal,
takeover after expiry) is in neither. For local folders they wrap the same flock, which is the
only part they would replace (open, flock, the check that the path is still the locked file: a
dozen lines); the rest stays ours either way: the holder's details written into the locked file
and read back for the refusal, and the file removed while still locked. filelock (4.x) releases
by unlocking and then closing, keeping the file ("so waiters share the same inode"), so a
finished run would leave a lock file with stale details in the output; and by default it falls
back, where flock is missing, to a marker-file lock that does not die with a killed holder.
portalocker's TemporaryFileLock removes the file after unlocking it, when another runner may
already hold it (so a third could lock a new file at the same path), and opens it with mode "w",
truncating the holder's details before the refused runner could read them. One extra
dependency for a dozen lines, with the kernel lock semantics unchanged, is not worth it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from videoproc.common.errors import OptionsError

if TYPE_CHECKING:  # options import the constants here; keep this module free of fsspec at import
    from videoproc.common.storage import Location

LOCK_NAME = ".videoproc.lock"
DEFAULT_LEASE_S = 60.0
MIN_LEASE_S = 3.0  # renewal every lease/3 must fit a round trip to the store and the create's settle
SETTLE_S = 1.0


def check_lock_lease(value: Any) -> None:
    """The --lock-lease of either stage: a finite number of seconds, at least MIN_LEASE_S."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < MIN_LEASE_S:
        raise OptionsError(
            f"lock_lease must be at least {MIN_LEASE_S:g} seconds (got {value!r}): the lease is renewed every "
            f"third of it; e.g. --lock-lease {DEFAULT_LEASE_S:g}"
        )


class OutputLocked(RuntimeError):
    """Another live run holds the output folder."""


class LockLost(RuntimeError):
    """This run's lease on an object-storage output was broken or expired; it must stop committing."""


@dataclass(kw_only=True)
class Lease:
    """The held lock. `holder` is what the lock file says; `check()` raises LockLost once it is lost."""

    location: Location
    holder: dict[str, Any]
    lease_s: float
    lost: str | None = None
    renewed: float = field(default_factory=time.monotonic)
    inode: tuple[int, int] | None = None

    @property
    def token(self) -> str:
        return self.holder["token"]

    def check(self) -> None:
        """Raise LockLost when another run may hold the output now; called before every commit."""
        if self.inode is not None and _path_inode(self.location.path) != self.inode:
            self.lost = f"the lock file {self.location.url} was removed or replaced"
        if self.inode is None and self.lost is None and time.monotonic() - self.renewed > self.lease_s:
            self.lost = f"its lease was not renewed for over {self.lease_s:g} s"
        if self.lost:
            raise LockLost(
                f"this run lost the lock on {_folder(self.location)} ({self.lost}); it stopped committing so "
                "that it cannot write into another run's output. Check which run holds the folder now "
                "and re-run once it has finished"
            )


@contextlib.contextmanager
def hold_output(output: Location, *, stage: str, break_lock: bool = False, lease_s: float = DEFAULT_LEASE_S,
                log: TextIO = sys.stderr) -> Iterator[Lease]:
    """Hold OUTPUT's lock for the duration of the block; raise OutputLocked at once if a live run holds it.

    stage: "preprocess" or "generate", named in the refusal. lease_s: seconds an object-storage lease
    lasts without renewal (ignored locally). break_lock: take an object-storage lock from its holder.
    """
    loc = output.child(LOCK_NAME)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "stage": stage, "token": uuid.uuid4().hex,
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "lease_s": lease_s}
    if loc.is_local:
        with _hold_local(loc, holder, break_lock=break_lock, log=log) as lease:
            yield lease
        return
    with _hold_remote(loc, holder, break_lock=break_lock, log=log) as lease:
        yield lease


# --- local folders: flock ---------------------------------------------------------------------

@contextlib.contextmanager
def _hold_local(loc: Location, holder: dict, *, break_lock: bool, log: TextIO) -> Iterator[Lease]:
    import fcntl

    os.makedirs(os.path.dirname(loc.path), exist_ok=True)
    fd = _lock_fd(loc, fcntl)
    lease = Lease(location=loc, holder=holder, lease_s=float("inf"), inode=_fd_inode(fd))
    try:
        if break_lock:
            print(f"--break-lock: {loc.url} is a local lock, which dies with its holder; it was free, "
                  "nothing was broken", file=log, flush=True)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode() + b"\n", 0)
        yield lease
    finally:
        with contextlib.suppress(FileNotFoundError):
            if _path_inode(loc.path) == lease.inode:
                os.unlink(loc.path)  # still locked here: nobody can lock this inode before we close
        os.close(fd)


def _lock_fd(loc: Location, fcntl: Any) -> int:
    """An open descriptor of the lock file, locked; OutputLocked when a live process holds it."""
    while True:
        fd = os.open(loc.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLocked(_refusal(loc, _holder_details(loc.path), remote=False)) from None
        if _path_inode(loc.path) == _fd_inode(fd):
            return fd
        os.close(fd)  # the holder removed the file as it finished: lock the new one instead


def _holder_details(path: str, *, wait_s: float = 2.0) -> dict:
    """What the holder wrote into the lock file. A holder writes it right after locking, so a run
    refused in between waits a moment for it, to name the holder rather than "a run"."""
    deadline = time.monotonic() + wait_s
    while not (holder := _read_local(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return holder


def _read_local(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return _parse(f.read())
    except FileNotFoundError:
        return {}


def _fd_inode(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _path_inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


# --- object storage: a renewed lease ------------------------------------------------------------

@contextlib.contextmanager
def _hold_remote(loc: Location, holder: dict, *, break_lock: bool, log: TextIO) -> Iterator[Lease]:
    lease = Lease(location=loc, holder=holder, lease_s=holder["lease_s"])
    _acquire_remote(loc, lease, break_lock=break_lock, log=log)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew_loop, args=(lease, stop), name="videoproc-lock-renewal", daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join()
        if _read_remote(loc).get("token") == lease.token:
            with contextlib.suppress(FileNotFoundError):
                loc.fs.rm_file(loc.path)


def _acquire_remote(loc: Location, lease: Lease, *, break_lock: bool, log: TextIO) -> None:
    if _create(loc, lease):
        return
    current = _read_remote(loc)
    if break_lock:
        print(f"--break-lock: breaking the lock on {_folder(loc)} held by {_describe(current)}; if that run is "
              "still alive it stops committing at its next renewal", file=log, flush=True)
    elif _expired(current):
        print(f"taking over the lock on {_folder(loc)}: its holder, {_describe(current)}, has not renewed it "
              "since its lease expired", file=log, flush=True)
    else:
        raise OutputLocked(_refusal(loc, current, remote=True))
    if _read_remote(loc).get("token") == current.get("token"):  # unchanged since judged: narrow the race
        with contextlib.suppress(FileNotFoundError):
            loc.fs.rm_file(loc.path)
    if not _create(loc, lease):
        raise OutputLocked(_refusal(loc, _read_remote(loc), remote=True))


def _create(loc: Location, lease: Lease) -> bool:
    """Create the lock object only if absent; then, after SETTLE_S, check that it is still ours
    (a taker that deleted an expired lock may have deleted ours instead)."""
    lease.holder["expires"] = time.time() + lease.lease_s
    try:
        loc.fs.pipe_file(loc.path, json.dumps(lease.holder).encode(), mode="create")
    except (FileExistsError, OSError) as exc:
        if not _is_precondition_failure(exc):
            raise
        return False
    lease.renewed = time.monotonic()
    time.sleep(SETTLE_S)
    return _read_remote(loc).get("token") == lease.token


def _is_precondition_failure(exc: BaseException) -> bool:
    """A refused create: s3fs raises FileExistsError on AWS and moto, but on Ceph RGW a bare
    OSError(EINVAL) whose cause is the 412 PreconditionFailed answer."""
    if isinstance(exc, FileExistsError):
        return True
    response = getattr(exc.__cause__, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code == "PreconditionFailed" or status == 412 or "PreconditionFailed" in str(exc)


def _renew_loop(lease: Lease, stop: threading.Event) -> None:
    while not stop.wait(lease.lease_s / 3):
        try:
            current = _read_remote(lease.location)
            if current.get("token") != lease.token:
                lease.lost = f"it is now held by {_describe(current)}" if current else "its lock object was deleted"
                return
            lease.holder["expires"] = time.time() + lease.lease_s
            lease.location.fs.pipe_file(lease.location.path, json.dumps(lease.holder).encode())
            lease.renewed = time.monotonic()
        except Exception:  # noqa: BLE001 - a failed renewal is retried; check() notices an expired lease
            continue


def _read_remote(loc: Location) -> dict:
    try:
        loc.fs.invalidate_cache(loc.path)
        return _parse(loc.fs.cat_file(loc.path))
    except FileNotFoundError:
        return {}


def _expired(holder: dict) -> bool:
    expires = holder.get("expires")
    return not isinstance(expires, (int, float)) or time.time() > expires


# --- messages -------------------------------------------------------------------------------------

def _parse(data: bytes) -> dict:
    try:
        content = json.loads(data)
    except ValueError:
        return {}
    return content if isinstance(content, dict) else {}


def _describe(holder: dict) -> str:
    if not holder:
        return "a run that has not written its details yet"
    return (f"{holder.get('stage', 'a videoproc')} run pid {holder.get('pid')} on host {holder.get('host')} "
            f"started {holder.get('since')}")


def _refusal(loc: Location, holder: dict, *, remote: bool) -> str:
    if remote:
        expires = holder.get("expires")
        left = f"{max(0.0, expires - time.time()):.0f} s" if isinstance(expires, (int, float)) else "its lease"
        fix = (f"if that run was killed, its lease expires in {left} and a re-run then takes over; to take it "
               "now, re-run with --break-lock (only if that run is really gone)")
    else:
        fix = "if it must stop, stop that process; its lock goes with it"
    return (f"output {_folder(loc)} is locked by {_describe(holder)}: another run is writing there, and a second "
            f"writer would mix or delete its files. Wait for it to finish or use another --output; {fix}")


def _folder(loc: Location) -> str:
    return loc.url.rsplit("/", 1)[0]
