"""The one parser that decides what a manifest URI is, before anything opens it.

Every source (and every generation `input_reference`) goes through `parse_uri`, so one rule set
decides the scheme: a string is a local path, a `file://` or `data:` URI, an http(s) URL or an
object-store URL, and anything ambiguous is refused with the fix rather than guessed at.
`s3:x/key` (a scheme without `//`) would otherwise read as a local path and escape --local-root,
and `s3://b/k::http://...` (an fsspec chain) would reach a second protocol past every check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from videoproc.common.errors import SourceRefused

# Object stores whose endpoint and credentials come from the operator's configuration. Other
# fsspec protocols (ftp, sftp, webhdfs...) would let a manifest row reach any host, past the
# address checks that http(s) URLs get, so they are refused.
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"})
HTTP_SCHEMES = frozenset({"http", "https"})
SUPPORTED = ("a local path, file:///PATH, data:, http(s)://, or an object store: "
             + ", ".join(f"{s}://" for s in sorted(OBJECT_STORE_SCHEMES)))

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# An IPv6 host literal right after '//' (http://[::1]:8080/...) holds '::' and is no chain.
_IPV6_HOST = re.compile(r"[^:]+://([^/?#@\[]*@)?\[[0-9A-Fa-f:.]*\]")


@dataclass(frozen=True, kw_only=True)
class ParsedURI:
    """`scheme` is '' for a plain local path, else lower case; `path` is the local file path for
    local paths and file:// URIs, else None. `uri` is the text as given."""

    uri: str
    scheme: str
    path: str | None = None

    @property
    def kind(self) -> str:
        """'local', 'data', 'http' or 'object': which opener reads it."""
        if self.scheme in ("", "file"):
            return "local"
        if self.scheme == "data":
            return "data"
        return "http" if self.scheme in HTTP_SCHEMES else "object"


def parse_uri(uri: str) -> ParsedURI:
    """Classify `uri`, or raise SourceError naming the rule it breaks and the fix."""
    if not isinstance(uri, str) or not uri:
        raise SourceRefused(f"URI {uri!r} is empty; every row needs a path or URL")
    match = _SCHEME.match(uri)
    scheme = match[1].lower() if match else ""
    if scheme == "data":
        return ParsedURI(uri=uri, scheme="data")
    if "::" in _IPV6_HOST.sub("", uri, count=1):
        raise SourceRefused(
            f"URI {shorten(uri)!r} contains '::', which chains a second protocol (fsspec URL "
            "chaining) past the checks of the first; chained URLs are refused: give one plain URL"
        )
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter (C:\...)
        return ParsedURI(uri=uri, scheme="", path=uri)
    if not uri[len(scheme) + 1 :].startswith("//"):
        url_form = "file:///PATH" if scheme == "file" else f"{scheme}://HOST/PATH"
        raise SourceRefused(
            f"URI {shorten(uri)!r} has the scheme {scheme!r} but no '//' after it, so it is neither a "
            f"URL nor a plain path; write {url_form} for a URL, or ./{shorten(uri)} for a "
            "local file"
        )
    if scheme == "file":
        return ParsedURI(uri=uri, scheme="file", path=_file_path(uri))
    if scheme in HTTP_SCHEMES or scheme in OBJECT_STORE_SCHEMES:
        return ParsedURI(uri=uri, scheme=scheme)
    raise SourceRefused(f"URI scheme {scheme!r} is not supported (in {shorten(uri)!r}); use {SUPPORTED}")


def _file_path(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise SourceRefused(f"file:// URI names a remote host {parts.netloc!r}; use file:///path")
    return unquote(parts.path)


def shorten(uri: str) -> str:
    """At most about 80 characters of `uri`, for error messages (a data: URI can be megabytes)."""
    return uri if len(uri) <= 80 else uri[:60] + "..." + uri[-10:]
