"""http(s):// sources. Until the hardened client lands, a plain fsspec range reader."""

from __future__ import annotations

from typing import BinaryIO

from videoproc.options import SourceOptions
from videoproc.source.remote import open_remote


def open_http(uri: str, *, options: SourceOptions) -> BinaryIO:
    return open_remote(uri, options=options)
