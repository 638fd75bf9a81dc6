"""How a pool worker hands a result's frames to the parent: through a file in memory, not the socket.

A row of raw frames is megabytes (16 frames of 224x224 RGB: 2.4 MB). Over the worker's socket it is
pickled, copied into the kernel in socket-buffer-sized pieces with the two processes waking each
other for every piece, and unpickled: about 5 ms a row on two cores, with the worker blocked in its
send until the parent has read the last piece. Written into a memfd (an anonymous in-memory file)
with one pwrite and read back with one pread it takes under 1 ms, and only a small message crosses
the socket.

pwrite and pread rather than a shared mapping: a mapped page that cannot be backed (a full tmpfs, a
memory limit) kills the process with SIGBUS, while a write that cannot be backed returns an error,
and then the frames go over the socket as before. A memfd lives outside /dev/shm, so a container's
small /dev/shm does not limit it.

The worker writes a row only once the parent has read the one before (it does not get its next
video until then), so one file per worker suffices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from multiprocessing import reduction
from multiprocessing.connection import Connection

from videoproc.video.process import VideoResult

# Frames smaller than this go over the socket: the pwrite/pread pair costs more than it saves.
MIN_BYTES = 256 * 1024
# A worker's file keeps at most this much memory between rows: a larger row's pages are freed
# before the next row is written, so one huge clip-mode row does not pin its size for the run.
KEEP_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class InFile:
    """A result sent without its frames, which are the first `length` bytes of the worker's file."""

    result: VideoResult
    length: int


def open_file() -> int | None:
    """A new memfd for a worker's frames, or None where the platform has none (then the socket)."""
    create = getattr(os, "memfd_create", None)
    if create is None:
        return None
    try:
        return create("videoproc-frames", os.MFD_CLOEXEC)
    except OSError:
        return None


def send_file(conn: Connection, fd: int) -> None:
    """Worker side: pass the file to the parent over the worker's socket (SCM_RIGHTS)."""
    reduction.send_handle(conn, fd, os.getppid())


def receive_file(conn: Connection) -> int:
    """Parent side: the worker's file, kept out of any process the parent starts later."""
    fd = reduction.recv_handle(conn)
    os.set_inheritable(fd, False)
    return fd


def pack(result: VideoResult, fd: int | None) -> VideoResult | InFile:
    """Worker side: the message to send for `result`. Raw frames of MIN_BYTES or more are written
    to `fd` and left out of the message."""
    frames = result.frames
    if fd is None or frames is None or len(frames) < MIN_BYTES:
        return result
    try:
        _write(fd, frames)
    except OSError:
        # Out of memory for the file (ENOSPC, ENOMEM): the socket still works, only slower.
        _shrink(fd, 0)
        return result
    return InFile(result=dataclasses.replace(result, frames=None), length=len(frames))


def unpack(message: VideoResult | InFile, fd: int | None) -> VideoResult:
    """Parent side: the result with its frames, read from the worker's file where they were put."""
    if not isinstance(message, InFile):
        return message
    if fd is None:
        raise OSError("a worker sent its frames through a file the parent never received")
    return dataclasses.replace(message.result, frames=_read(fd, message.length))


def _write(fd: int, frames: bytes | bytearray) -> None:
    if os.fstat(fd).st_size > max(len(frames), KEEP_BYTES):
        _shrink(fd, len(frames))
    view, offset = memoryview(frames), 0
    while offset < len(view):
        offset += os.pwrite(fd, view[offset:], offset)


def _read(fd: int, length: int) -> bytes:
    parts, got = [], 0
    while got < length:  # one pread, unless the kernel returns less than asked
        part = os.pread(fd, length - got, got)
        if not part:
            raise OSError(f"a worker's frames file holds {got} bytes, {length} were sent")
        parts.append(part)
        got += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _shrink(fd: int, size: int) -> None:
    with contextlib.suppress(OSError):  # a file that keeps its pages only costs memory
        os.ftruncate(fd, size)
