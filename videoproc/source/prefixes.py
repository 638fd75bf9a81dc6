"""Where rows may read from: --allowed-prefixes, and never inside the run's own output.

A row can name any bucket the job's credentials reach, the run's own output included (a manifest
that reads the shards being written, or their temporary files). Locations are compared in one
normal form: a local path or file:// URI as its real path (symlinks and '..' resolved), a URL as
scheme://host/path with the scheme's aliases folded (s3a -> s3, gcs -> gs, az/abfss -> abfs),
the host lower-cased, credentials, query and fragment dropped, and http(s) paths percent-decoded.
A prefix matches at a path-segment boundary: s3://b/videos allows s3://b/videos/x.mp4, never
s3://b/videos-private/x.mp4. URL paths with '.' or '..' segments are refused while a rule is in
force, since a server may resolve them to somewhere else.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from videoproc.common.errors import OptionsError, SourceError, SourceRefused
from videoproc.source.uri import ParsedURI, parse_uri, shorten

if TYPE_CHECKING:  # SourceOptions normalises its prefixes here, so it imports this module
    from videoproc.source.options import SourceOptions

_ALIASES = {"s3a": "s3", "gcs": "gs", "az": "abfs", "abfss": "abfs"}


def normalise_prefixes(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """The --allowed-prefixes entries in normal form; OptionsError for one that is not a location."""
    out = []
    for text in (p.strip() for p in prefixes):
        if not text:
            continue
        try:
            out.append(normalise_location(text))
        except SourceError as exc:
            raise OptionsError(f"allowed_prefixes entry {text!r} is not usable: {exc}") from None
    return tuple(out)


def normalise_location(location: str) -> str:
    """The normal form of a local path or URL (see the module docstring)."""
    parsed = parse_uri(location)
    if parsed.kind == "data":
        raise SourceRefused("a data: URI has no location; use a path or URL prefix")
    if parsed.kind == "local":
        return os.path.realpath(parsed.path or "")
    return _normal_url(parsed)


def check_location(parsed: ParsedURI, *, real_path: str | None, options: SourceOptions) -> None:
    """Raise SourceError when the row lies inside the run's output or outside --allowed-prefixes.
    real_path: the resolved local path, for local rows."""
    if parsed.kind == "data" or not (options.allowed_prefixes or options.own_output):
        return
    location = real_path if parsed.kind == "local" else _normal_url(parsed)
    assert location is not None
    if options.own_output and within(location, options.own_output):
        raise SourceRefused(
            f"{shorten(parsed.uri)} is inside this run's own output ({options.own_output}); a run never "
            "reads its own output: fix the row, or write the output somewhere else"
        )
    if options.allowed_prefixes and not any(within(location, p) for p in options.allowed_prefixes):
        raise SourceRefused(
            f"{shorten(parsed.uri)} (as {shorten(location)}) is not under --allowed-prefixes "
            f"({', '.join(options.allowed_prefixes)}); rows may only read there: fix the row or add its "
            "prefix to --allowed-prefixes"
        )


def within(location: str, prefix: str) -> bool:
    """Whether `location` is `prefix` or lies under it at a path-segment boundary."""
    return location == prefix or location.startswith(prefix.rstrip("/") + "/")


def normal_output(output: str) -> str:
    """The run's output in normal form (a local folder as its real path)."""
    try:
        return normalise_location(output)
    except SourceError as exc:
        raise OptionsError(f"output {output!r} is not usable: {exc}") from None


def _normal_url(parsed: ParsedURI) -> str:
    parts = urlsplit(parsed.uri)
    scheme = _ALIASES.get(parsed.scheme, parsed.scheme)
    host = parts.netloc.rpartition("@")[2].lower()
    path = unquote(parts.path) if parsed.kind == "http" else parts.path
    if any(segment in (".", "..") for segment in path.split("/")):
        raise SourceRefused(
            f"{shorten(parsed.uri)} has a '.' or '..' path segment, which a server may resolve to "
            "another location; such URLs are refused while --allowed-prefixes or the output guard "
            "applies: write the path without them"
        )
    return f"{scheme}://{host}{path}"
