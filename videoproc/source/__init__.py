"""Where video bytes come from: local paths, file://, data:, http(s):// and any fsspec URL.

Every source yields a seekable binary file object that counts the bytes it reads, so the decoder
can range-read remote files (a few keyframe intervals instead of the whole object) and each row can
report what it cost to fetch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from videoproc.errors import SourceError
from videoproc.options import SourceOptions
from videoproc.source.counting import CountingReader

# Object stores whose endpoint and credentials come from the operator's configuration. Other
# fsspec protocols (ftp, sftp, webhdfs...) would let a manifest row reach any host, past the
# address checks that http(s) URLs get, so they are refused.
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"})


def scheme_of(uri: str) -> str:
    """'' for plain local paths (including Windows drive letters), else the lower-case scheme."""
    scheme = urlsplit(uri).scheme.lower()
    return "" if len(scheme) <= 1 else scheme


@contextmanager
def open_uri(uri: str, *, options: SourceOptions) -> Iterator[CountingReader]:
    """Open `uri` for reading; raises SourceError (a failed row) when it cannot or may not."""
    scheme = scheme_of(uri)
    if scheme == "data":
        from videoproc.source.datauri import open_data_uri as opener
    elif scheme in ("", "file"):
        from videoproc.source.local import open_local as opener
    elif scheme in ("http", "https"):
        from videoproc.source.http import open_http as opener
    elif scheme in OBJECT_STORE_SCHEMES:
        from videoproc.source.remote import open_remote as opener
    else:
        raise SourceError(
            f"URI scheme {scheme!r} is not supported (in {uri[:80]!r}); use a local path, file://, "
            f"data:, http(s)://, or an object store: {', '.join(sorted(OBJECT_STORE_SCHEMES))}"
        )
    raw = opener(uri, options=options)
    reader = CountingReader(raw)
    try:
        yield reader
    finally:
        reader.close()
