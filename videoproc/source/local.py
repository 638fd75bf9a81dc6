"""Local paths and file:// URIs, optionally confined to --local-root; regular files only.

A FIFO would hang the reader and a device such as /dev/zero never ends, so the file is opened
without blocking (O_NONBLOCK: opening a FIFO with no writer returns at once) and checked with
fstat on the open descriptor, the object actually read, before a single byte is read.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import BinaryIO

from videoproc.common.errors import SourceError, SourceNotFound, SourceRefused
from videoproc.source.options import SourceOptions

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def resolve_local(path: str, options: SourceOptions) -> str:
    """The real path to read: confined to --local-root when one is set."""
    if options.local_root is not None:
        return _confine(path, options.local_root)
    return os.path.realpath(path)


def open_local_file(path: str) -> BinaryIO:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SourceNotFound(f"file not found: {path}") from None
    except PermissionError:
        raise SourceError(f"permission denied reading {path}") from None
    except IsADirectoryError:
        raise SourceRefused(f"{path} is a directory, not a video file") from None
    try:
        _check_regular(fd, path)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb", buffering=256 * 1024)
    except BaseException:
        os.close(fd)
        raise


def _check_regular(fd: int, path: str) -> None:
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    if stat.S_ISDIR(mode):
        raise SourceRefused(f"{path} is a directory, not a video file")
    raise SourceRefused(
        f"{path} is {kind}, not a regular file; only regular files are read (a pipe or device could "
        "hang or never end): copy the data to a file"
    )


def _confine(path: str, root: str) -> str:
    """Resolve symlinks and '..' first, then require the real path to lie under the root."""
    full = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([full, root]) != root:
        raise SourceRefused(
            f"{path} resolves to {full}, outside --local-root {root}; local paths must stay "
            "inside the root (no '..' or symlink escapes)"
        )
    return full
