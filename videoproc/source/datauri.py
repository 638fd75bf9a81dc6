"""data: URIs (RFC 2397), base64 only: small clips embedded in the manifest itself."""

from __future__ import annotations

import base64
import binascii
import io
from urllib.parse import unquote

from videoproc.common.errors import SourceRefused
from videoproc.source.options import SourceOptions


def open_data_uri(uri: str, *, options: SourceOptions) -> io.BytesIO:
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise SourceRefused("data URI has no ',' before its payload; expected data:video/mp4;base64,...")
    parts = [p.strip().lower() for p in header.split(";")]
    media_type, params = parts[0] or "text/plain", parts[1:]
    _check_media_type(media_type, options.data_media_types)
    if "base64" not in params:
        raise SourceRefused(
            f"data URI for {media_type} is not base64-encoded; only ';base64,' payloads are "
            "supported for video"
        )
    limit = options.max_data_uri_bytes
    if len(payload) * 3 // 4 > limit:
        raise SourceRefused(
            f"data URI payload is about {len(payload) * 3 // 4} bytes, over the "
            f"--max-data-uri-bytes limit of {limit}; store the video as a file or URL instead"
        )
    return io.BytesIO(_b64decode(unquote(payload)))


def _check_media_type(media_type: str, accepted: tuple[str, ...]) -> None:
    for pattern in accepted:
        if media_type == pattern or (pattern.endswith("/*") and media_type.startswith(pattern[:-1])):
            return
    kind = "a video" if "video/*" in accepted else "accepted here"
    raise SourceRefused(f"data URI media type {media_type!r} is not {kind}; expected {' or '.join(accepted)}")


def _b64decode(payload: str) -> bytes:
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SourceRefused(f"data URI payload is not valid base64 ({exc})") from exc
