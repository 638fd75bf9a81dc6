"""Where video bytes come from: local paths, file://, data:, http(s):// and object-store URLs.

Every URI is classified by one parser (source.uri) and checked against the run's location rules
(source.prefixes: --allowed-prefixes, never the run's own output) before anything is opened.
Every source yields a seekable binary file object that counts the bytes it reads, so the decoder
can range-read remote files (a few keyframe intervals instead of the whole object) and each row can
report what it cost to fetch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from videoproc.source.counting import CountingReader
from videoproc.source.options import SourceOptions
from videoproc.source.prefixes import check_location
from videoproc.source.uri import OBJECT_STORE_SCHEMES, ParsedURI, parse_uri

__all__ = ["OBJECT_STORE_SCHEMES", "open_uri", "parse_uri"]


@contextmanager
def open_uri(uri: str, *, options: SourceOptions) -> Iterator[CountingReader]:
    """Open `uri` for reading; raises SourceError (a failed row) when it cannot or may not."""
    reader = CountingReader(_open_raw(parse_uri(uri), options))
    try:
        yield reader
    finally:
        reader.close()


def _open_raw(parsed: ParsedURI, options: SourceOptions):
    if parsed.kind == "local":
        from videoproc.source.local import open_local_file, resolve_local

        path = resolve_local(parsed.path or "", options)
        check_location(parsed, real_path=path, options=options)
        return open_local_file(path)
    check_location(parsed, real_path=None, options=options)
    if parsed.kind == "data":
        from videoproc.source.datauri import open_data_uri as opener
    elif parsed.kind == "http":
        from videoproc.source.http import open_http as opener
    else:
        from videoproc.source.remote import open_remote as opener
    return opener(parsed.uri, options=options)
