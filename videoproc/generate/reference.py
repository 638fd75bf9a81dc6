"""The image behind a request's `input_reference`, for image-to-video.

`_read_reference_bytes` is the one place that turns a URI into bytes: local paths, `file://`,
`data:` (image/* or application/octet-stream), http(s) and object-store URLs, through the source
layer that videos use, with its rules (GenerateOptions.references): one URI parser, regular local
files only (never a FIFO or /dev/zero), --local-root, --allowed-domains, --allow-private-hosts,
--allowed-prefixes, never the run's own output, a size cap on every scheme and an overall deadline
on http(s). A reference that breaks a rule fails its request's record. Relative paths are relative
to the working directory (the repository root for `make generate`), like every other path the
command takes.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from videoproc.common.errors import SourceError
from videoproc.generate.requests import RequestError
from videoproc.source import open_uri
from videoproc.source.options import SourceOptions
from videoproc.source.uri import shorten

# What Pillow decodes that a reference may be; anything else (EPS, PSD, ICNS...) is refused, since
# each format Pillow opens is one more parser the model process exposes.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
_FORMAT_NAMES = "PNG, JPEG or WebP"


def load_reference(uri: str, *, options: SourceOptions | None = None) -> Any:
    """Decode the image at `uri` into an RGB `PIL.Image`; a bad URI or image raises RequestError.
    options: the source rules (GenerateOptions.reference_source()); None for the defaults."""
    from PIL import Image

    data = _read_reference_bytes(uri, options or _default_options())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                return image.convert("RGB")
    except Image.UnidentifiedImageError:
        reason = f"no {_FORMAT_NAMES} image found in its {len(data)} bytes"
    except (Image.DecompressionBombWarning, Image.DecompressionBombError, OSError) as exc:
        reason = str(exc)
    raise RequestError(f"input_reference {shorten(uri)!r} is not a readable image ({reason}); "
                       f"point it at a {_FORMAT_NAMES} file")


def _read_reference_bytes(uri: str, options: SourceOptions) -> bytes:
    """Bytes of the image at `uri`, at most options.max_download_bytes of them."""
    cap = options.max_download_bytes
    embedded = len(uri.partition(",")[2]) * 3 // 4 if uri[:5].lower() == "data:" else 0
    if embedded > cap:  # checked here so that the message names this stage's flag
        raise RequestError(f"input_reference {shorten(uri)!r}: {_too_big(embedded, cap)}")
    try:
        with open_uri(uri, options=options) as reader:
            size = reader.size()
            if size is not None and size > cap:
                raise SourceError(_too_big(size, cap))
            data = reader.read(cap + 1)
    except SourceError as exc:
        raise RequestError(f"input_reference {shorten(uri)!r}: {exc}") from None
    except OSError as exc:
        raise RequestError(f"input_reference {shorten(uri)!r}: read error: {exc}") from None
    if len(data) > cap:
        raise RequestError(f"input_reference {shorten(uri)!r}: {_too_big(len(data), cap)}")
    return data


def _too_big(size: int, cap: int) -> str:
    return (f"is {size} bytes or more, over the max_reference_bytes cap of {cap}; use a smaller image or "
            "raise --max-reference-bytes")


def _default_options() -> SourceOptions:
    from videoproc.generate.options import ReferenceRules

    return ReferenceRules().source(output=None, storage_options={})
