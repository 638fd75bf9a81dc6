"""http(s):// sources, fetched with range requests and hardened for URLs from untrusted manifests.

The video is a seekable file over `Range: bytes=a-b` requests (see cache.BlockReader), so
sampling a few frames of a large MP4 fetches the index and a few keyframe intervals, not the
whole object. A server that ignores Range gets its whole body streamed into a bounded spool.

Every request: the host is resolved and checked (safety.check_url) before any connection, on
every redirect hop too, and the connection goes to the checked address; a connect timeout and a
per-read timeout; a cap on the object's size (by Content-Length/Content-Range up front) and on
bytes actually received; bounded retries with exponential backoff on connection errors, 5xx and
429 (honouring Retry-After up to MAX_RETRY_AFTER_S), never on other 4xx.

The HTTP/1.1 protocol itself (connections, keep-alive, TLS, request and response framing,
Content-Length enforcement) is urllib3's: one HTTP(S)ConnectionPool per open object, made for the
checked IP, with the host name as Host header and as TLS `server_hostname` (SNI, and the
certificate checked for the name by the ssl module itself: `assert_hostname` is not passed, as
it would turn the context's `check_hostname` off for urllib3's own matcher). Keep-alive works
across range requests (http.client's read1 on Python <= 3.12 leaves a fully read answer open, so
the connection could not be reused: over https that was a TLS handshake per 64 KiB block, 200
ranged reads took 9.2 s against the test server, 0.15 s with urllib3). Kept here, on purpose,
with urllib3 asked for one attempt and no redirects (`retries=False, redirect=False`):
- redirects: each hop must be resolved and checked before it is dialled (urllib3 would follow
  it to any address);
- retries: one loop over the whole exchange, headers and body, so a connection dropped mid-body
  counts as an attempt like a 503 does (urllib3's `Retry` ends when the headers arrive), the
  first retry waits too (urllib3 does not back off before the second try), and a Retry-After
  over MAX_RETRY_AFTER_S fails the row at once (urllib3's `retry_after_max` waits that long);
- the byte caps and the overall deadline, checked between socket reads (`read1`), which no
  library does.
"""

from __future__ import annotations

import functools
import http.client
import random
import re
import ssl
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.response import BaseHTTPResponse

from videoproc.common.errors import SourceError, SourceNotFound, SourceRefused
from videoproc.source.cache import BLOCK_SIZE, BlockReader, BlockStore, cache_key, open_cached
from videoproc.source.options import SourceOptions
from videoproc.source.prefixes import check_location
from videoproc.source.safety import Target, check_url, redact, split_url
from videoproc.source.uri import parse_uri

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
MAX_RETRY_AFTER_S = 60.0
# Bodies of servers without Range support stay in memory up to this, then go to a temp file.
SPOOL_MEMORY_BYTES = 16 * 2**20
# Error and redirect bodies up to this are read so the connection can be reused; larger: closed.
DISCARD_LIMIT = 64 * 2**10
READ_CHUNK = 64 * 2**10
USER_AGENT = "videoproc"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+)", re.IGNORECASE)
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def open_http(uri: str, *, options: SourceOptions) -> BlockReader:
    """A seekable reader of `uri`; raises SourceError when it is refused or cannot be fetched."""
    key = cache_key(uri, options)
    client = HttpClient(uri, options=options)
    try:
        reader = open_cached(
            key, entries=options.cache_entries, make_store=client.first_store, fetch=client.fetch, on_close=client.close
        )
        client.expect(reader.store)
    except BaseException:
        client.close()
        raise
    return reader


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based): the server's Retry-After when it
    gave one, else BACKOFF_BASE_S doubling per attempt, with jitter so that many workers that
    failed together do not retry together."""
    if retry_after is not None:
        return retry_after
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


_sleep = time.sleep  # tests replace this to record the backoff instead of waiting


class _Retryable(Exception):
    """A failure worth another attempt: a 5xx or 429 answer (other causes are OSError and
    urllib3's errors, retried as they are)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _ConnectFailed(OSError):
    """No checked address of the host took the connection (a read failure reads differently)."""


_RETRIED = (_Retryable, OSError, http.client.HTTPException, urllib3.exceptions.HTTPError)


class HttpClient:
    """The requests behind one open http(s) object: one pinned connection pool at a time, the URL
    reached after redirects, bytes received so far, and the spool when Range is ignored."""

    def __init__(self, url: str, *, options: SourceOptions) -> None:
        split_url(url)  # refuse non-http(s) and host-less URLs before anything else
        self.url = url
        self.options = options
        self.deadline = None if options.total_timeout is None else time.monotonic() + options.total_timeout
        self.size: int | None = None
        self.version: str | None = None  # strong ETag of the first ranged answer, sent as If-Range
        self.received = 0
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._response: BaseHTTPResponse | None = None  # the answer being read, holding the connection
        self._origin: tuple[str, str, int] | None = None
        self._targets: dict[tuple[str, str, int], Target] = {}  # resolved and checked once per open
        self._spool: tempfile.SpooledTemporaryFile | None = None

    def first_store(self, budget: int) -> BlockStore:
        """Fetch the first block, which tells the object's size, into a new store."""
        data = self.fetch(0, BLOCK_SIZE)
        store = BlockStore(size=self.size or 0, budget=budget, version=self.version)
        store.put_range(0, data)
        return store

    def expect(self, store: BlockStore) -> None:
        """Adopt a cached object's size and version, still subject to this run's size cap."""
        self.size, self.version = store.size, store.version
        self._check_size(store.size, how="cached size")

    def fetch(self, start: int, end: int) -> bytes:
        """The bytes [start, end) of the object (end is clipped to its size)."""
        if self._spool is not None:
            return self._from_spool(start, end)
        return self._retrying(lambda: self._get_range(start, end))

    def close(self) -> None:
        self._drop_connection()
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    # -- one attempt -------------------------------------------------------------------------

    def _get_range(self, start: int, end: int) -> bytes:
        response = self._send(start, end)
        if response.status == 206:
            return self._read_range(response, start, end)
        if self.version is not None:
            self._discard(response)
            raise SourceError(
                f"{redact(self.url)} changed while it was being read (the server sent the whole new "
                "object instead of the requested range); retry the row"
            )
        self._spool_body(response)
        return self._from_spool(start, end)

    def _send(self, start: int, end: int) -> BaseHTTPResponse:
        """GET the range, following redirects (each hop re-checked) up to --max-redirects."""
        url = self.url
        for _ in range(self.options.max_redirects + 1):
            response = self._request(url, start, end)
            if response.status not in _REDIRECTS:
                self.url = url
                return self._checked(response, url)
            url = self._next_hop(response, url)
        raise SourceRefused(
            f"more than {self.options.max_redirects} redirects starting at {redact(self.url)} (last "
            f"to {redact(url)}); the limit is max_redirects={self.options.max_redirects}: fix the "
            "URL or raise the limit"
        )

    def _request(self, url: str, start: int, end: int) -> BaseHTTPResponse:
        target = self._target(url)
        headers = {
            "Host": _host_header(target),  # the name, while the pool dials the checked IP
            "Range": f"bytes={start}-{end - 1}",
            "Accept-Encoding": "identity",  # ranges must address the stored bytes, not a gzip of them
            "User-Agent": USER_AGENT,
        }
        if self.version is not None:
            headers["If-Range"] = self.version
        self._response = self._urlopen(target, _request_target(url), headers)
        return self._response

    def _urlopen(self, target: Target, path: str, headers: dict[str, str]) -> BaseHTTPResponse:
        """One GET on the kept pool, or on a new one for the first checked address that takes
        the connection (like socket.create_connection, but only over the checked addresses)."""
        pools = [self._pool] if self._pool is not None else (_pool(target, ip, self.options) for ip in target.ips)
        failure = ""
        for pool in pools:
            try:
                response = pool.urlopen("GET", path, headers=headers, retries=False, redirect=False,
                                        preload_content=False, decode_content=False, release_conn=False)
            except ConnectTimeoutError as exc:  # NewConnectionError included
                pool.close()
                failure = _connect_failure(target, pool.host, exc, self.options)
                continue
            self._pool = pool
            return response
        self._pool = None
        raise _ConnectFailed(failure)

    def _next_hop(self, response: BaseHTTPResponse, url: str) -> str:
        location = response.headers.get("Location")
        self._discard(response)
        if not location:
            raise SourceError(f"HTTP {response.status} for {redact(url)} has no Location header; "
                              "the server is misconfigured")
        target = urljoin(url, location.strip())
        split_url(target)  # a redirect to file://, ftp:// or a host-less URL is refused here
        check_location(parse_uri(target), real_path=None, options=self.options)
        return target

    def _checked(self, response: BaseHTTPResponse, url: str) -> BaseHTTPResponse:
        status = response.status
        if status in (200, 206):
            return response
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        self._discard(response)
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status} for {redact(url)}", retry_after)
        if status == 416:
            raise SourceError(f"HTTP 416 for {redact(url)}: the server has no bytes to send, the object is empty; "
                              "check the URL")
        error = SourceNotFound if status in (404, 410) else SourceError
        raise error(
            f"HTTP {status} for {redact(url)}; client errors (4xx other than 429) are not retried: "
            "check the URL and its access rights"
        )

    # -- bodies ------------------------------------------------------------------------------

    def _read_range(self, response: BaseHTTPResponse, start: int, end: int) -> bytes:
        first, last, total = _content_range(response, self.url)
        self._learn(total, response, how="Content-Range")
        end = min(end, total)
        if (first, last + 1) != (start, end):
            self._discard(response)
            raise SourceError(
                f"{redact(self.url)} answered bytes {first}-{last} to a request for bytes {start}-{end - 1}; "
                "the server's range support is broken"
            )
        self._count(end - start)
        data = _read_exact(response, end - start, self._check_deadline)
        if not response.isclosed():  # more body than the range: the connection is out of step
            self._drop_connection()
        return data

    def _spool_body(self, response: BaseHTTPResponse) -> None:
        """Range was ignored: stream the whole body, counting it against the cap as it comes."""
        if response.length_remaining is not None:
            self._check_size(response.length_remaining, how="Content-Length")
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115  kept: it becomes the body
        try:
            _copy_counted(response, spool, self._count_in_time)
        except BaseException:
            spool.close()
            raise
        size = spool.tell()
        if self.size is not None and size != self.size:
            spool.close()
            raise SourceError(f"{redact(self.url)} changed while it was being read "
                              f"(was {self.size} bytes, now {size}); retry the row")
        self.size, self._spool = size, spool

    def _from_spool(self, start: int, end: int) -> bytes:
        assert self._spool is not None
        self._spool.seek(start)
        return self._spool.read(max(0, min(end, self.size or 0) - start))

    def _learn(self, total: int, response: BaseHTTPResponse, *, how: str) -> None:
        self._check_size(total, how=how)
        if self.size is None:
            self.size = total
            etag = response.headers.get("ETag")
            self.version = etag if etag and not etag.startswith("W/") else None
        elif total != self.size:
            raise SourceError(f"{redact(self.url)} changed while it was being read "
                              f"(was {self.size} bytes, now {total}); retry the row")

    def _check_size(self, size: int, *, how: str) -> None:
        cap = self.options.max_download_bytes
        if size > cap:
            raise SourceRefused(
                f"{redact(self.url)} is {size} bytes (by its {how}), over the max_download_bytes "
                f"cap of {cap}; raise --max-download-bytes or leave this video out"
            )

    def _count(self, nbytes: int) -> None:
        """Refuse before receiving more than the cap (a server may lie or send no length)."""
        cap = self.options.max_download_bytes
        if self.received + nbytes > cap:
            self._drop_connection()
            raise SourceRefused(
                f"{redact(self.url)} sent more than the max_download_bytes cap of {cap} bytes "
                f"({self.received} received, {nbytes} more coming); raise --max-download-bytes or "
                "leave this video out"
            )
        self.received += nbytes

    def _count_in_time(self, nbytes: int) -> None:
        self._check_deadline()
        self._count(nbytes)

    def _check_deadline(self) -> None:
        """A server that drips a byte at a time never trips read_timeout; this is the overall limit."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            self._drop_connection()
            raise SourceError(
                f"fetching {redact(self.url)} took longer than the overall limit of "
                f"{self.options.total_timeout:g} s; the server is too slow or stalled: fix the URL or "
                "raise the limit"
            )

    # -- connections and retries -------------------------------------------------------------

    def _target(self, url: str) -> Target:
        """Where `url`'s origin is reached. A new origin is resolved and checked before any
        connection to it, once per open: reconnects reuse the checked addresses."""
        origin = split_url(url)
        if origin != self._origin:
            self._drop_connection()
            self._origin = origin
        if origin not in self._targets:
            self._targets[origin] = check_url(url, options=self.options)
        return self._targets[origin]

    def _discard(self, response: BaseHTTPResponse) -> None:
        """Finish a response we do not want; read a small body to keep the connection usable."""
        if response.length_remaining is not None and response.length_remaining <= DISCARD_LIMIT:
            try:
                response.read()
                response.release_conn()
                return
            except _RETRIED[1:]:
                pass
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._response is not None:
            self._response.close()  # closes its connection: a half-read answer is never reused
        if self._pool is not None:
            self._pool.close()
        self._pool, self._response, self._origin = None, None, None

    def _retrying(self, attempt: Callable[[], T]) -> T:
        tries = 0
        while True:
            tries += 1
            try:
                return attempt()
            except _RETRIED as exc:
                self._drop_connection()
                if (bad_cert := _cause(exc, ssl.SSLCertVerificationError)) is not None:
                    raise SourceError(f"TLS certificate of {redact(self.url)} is not valid "
                                      f"({bad_cert.verify_message}); not retried") from None
                self._after_failure(exc, tries)

    def _after_failure(self, exc: Exception, tries: int) -> None:
        """Wait before the next attempt, or raise the final error when none is left."""
        self._check_deadline()
        problem = _describe(exc, self.url, self.options)
        retry_after = getattr(exc, "retry_after", None)
        if tries > max(0, self.options.http_retries):
            raise SourceError(
                f"{problem}; gave up after {tries} attempt{'s' if tries > 1 else ''} "
                f"(http_retries={self.options.http_retries}, "
                "exponential backoff); the server or network is failing: retry the row later"
            )
        if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
            raise SourceError(
                f"{problem}; the server asks to retry after {retry_after:.0f} s, longer than the "
                f"{MAX_RETRY_AFTER_S:.0f} s a worker waits: retry the row later"
            )
        _sleep(backoff_delay(tries, retry_after))


def _pool(target: Target, ip: str, options: SourceOptions) -> urllib3.HTTPConnectionPool:
    """A keep-alive pool of one connection to the already checked `ip` (no second DNS lookup that
    could answer differently); TLS sends the host name as SNI and checks the certificate for it."""
    timeout = urllib3.Timeout(connect=options.connect_timeout, read=options.read_timeout)
    common = {"port": target.port, "timeout": timeout, "maxsize": 1, "retries": False}
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(ip, ssl_context=_ssl_context(), server_hostname=target.host, **common)
    return urllib3.HTTPConnectionPool(ip, **common)


def _connect_failure(target: Target, ip: str, exc: ConnectTimeoutError, options: SourceOptions) -> str:
    ip = ip.strip("[]")
    if isinstance(exc, NewConnectionError):
        cause = exc.__cause__
        reason = getattr(cause, "strerror", None) or cause or exc
        return f"cannot connect to {target.host} ({ip}) port {target.port}: {reason}"
    return (f"connecting to {target.host} ({ip}) port {target.port} "
            f"timed out after {options.connect_timeout} s (connect_timeout)")


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = {"http": 80, "https": 443}[target.scheme]
    return host if target.port == default else f"{host}:{target.port}"


def _cause(exc: BaseException, kind: type[E]) -> E | None:
    """`exc` or the first error of type `kind` it wraps (urllib3 wraps OS, TLS and http.client
    errors in its own, as args[-1] or the cause)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        inner = exc.args[-1] if exc.args and isinstance(exc.args[-1], BaseException) else None
        exc = inner or exc.__cause__ or exc.__context__
    return None


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _request_target(url: str) -> str:
    """Path and query, percent-encoding what http.client would refuse (spaces, non-ASCII)."""
    parts = urlsplit(url)
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    return f"{path}?{quote(parts.query, safe=_PATH_SAFE + '?')}" if parts.query else path


def _content_range(response: BaseHTTPResponse, url: str) -> tuple[int, int, int]:
    header = response.headers.get("Content-Range") or ""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if not match:
        raise SourceError(
            f"{redact(url)} answered a range request with Content-Range {header!r}; expected "
            "'bytes FIRST-LAST/SIZE' (the server must state the object's size)"
        )
    return int(match[1]), int(match[2]), int(match[3])


def _read_exact(response: BaseHTTPResponse, nbytes: int, tick: Callable[[], None]) -> bytes:
    """Read exactly `nbytes`, calling tick() between socket reads (read1 returns after one read,
    where read(n) would wait for all n bytes however slowly they come)."""
    chunks, got = [], 0
    while got < nbytes:
        tick()
        chunk = response.read1(min(READ_CHUNK, nbytes - got))
        if not chunk:  # urllib3 raises this itself when the body is shorter than its Content-Length
            raise http.client.IncompleteRead(b"".join(chunks), nbytes - got)
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _copy_counted(response: BaseHTTPResponse, out, count: Callable[[int], None]) -> None:
    """Copy the body to `out`, calling count(n) before keeping each chunk; a body shorter than
    its Content-Length raises urllib3's IncompleteRead (enforce_content_length)."""
    while chunk := response.read1(READ_CHUNK):
        count(len(chunk))
        out.write(chunk)


def _describe(exc: Exception, url: str, options: SourceOptions) -> str:
    """One line for a person: what went wrong with which URL."""
    shown = redact(url)
    if isinstance(exc, (_Retryable, _ConnectFailed)):
        return f"{exc} while fetching {shown}" if isinstance(exc, _ConnectFailed) else str(exc)
    if isinstance(exc, ReadTimeoutError) or _cause(exc, TimeoutError) is not None:
        return f"no data from {shown} for {options.read_timeout} s (read_timeout); the server is too slow or stalled"
    if (short := _cause(exc, http.client.IncompleteRead)) is not None:
        return f"connection to {shown} closed with {short.expected} bytes of the body still missing"
    if _cause(exc, http.client.RemoteDisconnected) is not None:
        return f"{shown} closed the connection without answering"
    if _cause(exc, ConnectionResetError) is not None:
        return f"connection to {shown} was reset"
    return f"fetching {shown} failed: {type(exc).__name__}: {exc}"
