"""One runner per output folder: the generation stage takes the shared output lock.

See videoproc.common.runlock for how it works: a kernel lock (flock) on `OUTPUT/.videoproc.lock` locally,
which dies with its holder, and a renewed lease on object storage, created with a conditional PUT.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import TextIO

from videoproc.common.runlock import DEFAULT_LEASE_S, LOCK_NAME, Lease, LockLost, OutputLocked, hold_output
from videoproc.common.storage import Location

__all__ = ["LOCK_NAME", "Lease", "LockLost", "OutputLocked", "output_lock"]


def output_lock(out: Location, *, break_lock: bool = False, lease_s: float = DEFAULT_LEASE_S,
                log: TextIO = sys.stderr) -> AbstractContextManager[Lease]:
    """Hold OUTPUT's lock for the duration; OutputLocked at once when a live run holds it."""
    return hold_output(out, stage="generate", break_lock=break_lock, lease_s=lease_s, log=log)
