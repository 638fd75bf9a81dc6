"""Local paths and file:// URIs, optionally confined to --local-root."""

from __future__ import annotations

import os
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from videoproc.errors import SourceError
from videoproc.options import SourceOptions


def local_path(uri: str) -> str:
    if uri.lower().startswith("file:"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise SourceError(f"file:// URI names a remote host {parts.netloc!r}; use file:///path")
        return unquote(parts.path)
    return uri


def open_local(uri: str, *, options: SourceOptions) -> BinaryIO:
    path = local_path(uri)
    if options.local_root is not None:
        path = _confine(path, options.local_root)
    if os.path.isdir(path):
        raise SourceError(f"{path} is a directory, not a video file")
    try:
        return open(path, "rb", buffering=256 * 1024)
    except FileNotFoundError:
        raise SourceError(f"file not found: {path}") from None
    except PermissionError:
        raise SourceError(f"permission denied reading {path}") from None


def _confine(path: str, root: str) -> str:
    """Resolve symlinks and '..' first, then require the real path to lie under the root."""
    full = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([full, root]) != root:
        raise SourceError(
            f"{path} resolves to {full}, outside --local-root {root}; local paths must stay "
            "inside the root (no '..' or symlink escapes)"
        )
    return full
