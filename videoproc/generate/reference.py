"""The image behind a request's `input_reference`, for image-to-video.

`_read_reference_bytes` is the one place that turns a URI into bytes: local paths, `file://`,
`data:` (image/* or application/octet-stream), http(s) and fsspec URLs, through the source layer
that videos use, with the same URL safety rules. Relative paths are relative to the working directory (the repository
root for `make generate`), like every other path the command takes.
"""

from __future__ import annotations

import io
from typing import Any

from videoproc.errors import SourceError
from videoproc.generate.requests import RequestError
from videoproc.options import SourceOptions
from videoproc.source import open_uri

MAX_REFERENCE_BYTES = 256 * 2**20


def load_reference(uri: str) -> Any:
    """Decode the image at `uri` into an RGB `PIL.Image`; a bad URI or image raises RequestError."""
    from PIL import Image, UnidentifiedImageError

    data = _read_reference_bytes(uri)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise RequestError(f"input_reference {_short(uri)!r} is not a readable image ({exc}); "
                           "point it at a PNG or JPEG") from None


def _read_reference_bytes(uri: str, *, storage_options: dict | None = None) -> bytes:
    """Bytes of the image at `uri`, through the same source layer (and URL safety rules) as videos."""
    options = SourceOptions(
        storage_options=storage_options or {},
        data_media_types=("image/*", "application/octet-stream"),
        max_download_bytes=MAX_REFERENCE_BYTES,
    )
    try:
        with open_uri(uri, options=options) as reader:
            return reader.read()
    except SourceError as exc:
        raise RequestError(f"input_reference {_short(uri)!r}: {exc}") from None


def _short(uri: str) -> str:
    return uri if len(uri) <= 80 else uri[:60] + "..." + uri[-10:]
