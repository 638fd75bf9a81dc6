"""A real threaded HTTP/1.1 server on 127.0.0.1 for tests: files served with Range support and
keep-alive, and endpoints that misbehave the ways real servers do.

Routes (NAME is a file given to the server; TOKEN is any string that makes a path unique, so
each test gets its own failure counter):

  /files/NAME                    the file; honours `Range: bytes=...` (206) and keep-alive
  /norange/NAME                  the whole file (200) whatever the Range header says
  /close/NAME                    as /files, but every answer closes the connection
  /slow/SECONDS/NAME             headers at once, the body only after SECONDS
  /drip/SECONDS/NAME             the whole file (200), one byte every SECONDS: never a read timeout
  /fail/WHAT/TIMES/TOKEN/NAME    the first TIMES requests fail, then the file is served; WHAT is
                                 an HTTP status (500, 503, 429...) or `drop` (half the body, then
                                 the connection closes); ?retry_after=S adds a Retry-After header
  /status/CODE                   an answer with that status and a short body
  /redirect?to=URL               302 to URL (which the client must check before following)
  /hops/N/NAME                   N redirects in a row, then /files/NAME
  /loop                          302 to itself, forever
  /endless                       no Content-Length, bytes until the client hangs up (64 MiB max)
  /claims/LENGTH/NAME            Content-Length: LENGTH (a lie), then the whole file, then close
  /host                          the request's Host header as the body (Range honoured)

Counters: `sent[NAME]` body bytes sent of each file, `requests` one RequestRecord per request,
`sni` the TLS server names clients asked for (when started with a TLS context).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ENDLESS_MAX = 64 * 2**20
_CHUNK = 64 * 2**10
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True, kw_only=True)
class RequestRecord:
    path: str
    range: str | None
    host: str | None


class HttpTestServer:
    """Serves `files` (name -> local path) on 127.0.0.1 at a free port until stop()."""

    def __init__(self, files: dict[str, str], *, tls: ssl.SSLContext | None = None) -> None:
        self.files = {name: _read(path) for name, path in files.items()}
        self.requests: list[RequestRecord] = []
        self.sent: Counter[str] = Counter()
        self.sni: list[str | None] = []
        self.stopping = threading.Event()
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.scheme = "https" if tls else "http"
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http-test-server", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str, *, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}/{path.lstrip('/')}"

    def start(self) -> HttpTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.sent.clear()
            self.sni.clear()

    def __enter__(self) -> HttpTestServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def record(self, handler: BaseHTTPRequestHandler) -> None:
        entry = RequestRecord(path=handler.path, range=handler.headers.get("Range"), host=handler.headers.get("Host"))
        with self._lock:
            self.requests.append(entry)

    def count_sent(self, name: str, nbytes: int) -> None:
        with self._lock:
            self.sent[name] += nbytes

    def should_fail(self, key: str, times: int) -> bool:
        with self._lock:
            self._failures[key] += 1
            return self._failures[key] <= times


class _QuietServer(ThreadingHTTPServer):
    """Clients in these tests hang up mid-answer on purpose (caps, timeouts); that is no error here."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _handler_for(server: HttpTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    owner: HttpTestServer

    def log_message(self, format: str, *args) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self.owner.record(self)
        parts = urlsplit(self.path)
        route, _, rest = parts.path.strip("/").partition("/")
        handler = getattr(self, f"_route_{route}", None)
        try:
            if handler is None:
                self._answer(404, b"no such route\n")
            else:
                handler(rest, parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True  # the client hung up, as clients that give up do

    # -- routes --------------------------------------------------------------------------------

    def _route_files(self, name: str, query) -> None:
        self._serve(name, self.owner.files[name])

    def _route_norange(self, name: str, query) -> None:
        self._serve(name, self.owner.files[name], ranges=False)

    def _route_close(self, name: str, query) -> None:
        self.close_connection = True
        self._serve(name, self.owner.files[name], extra={"Connection": "close"})

    def _route_slow(self, rest: str, query) -> None:
        seconds, _, name = rest.partition("/")
        data = self.owner.files[name]
        self._head(200, {"Content-Length": str(len(data))})
        self.owner.stopping.wait(float(seconds))
        self._body(name, data)

    def _route_drip(self, rest: str, query) -> None:
        seconds, _, name = rest.partition("/")
        data = self.owner.files[name]
        self._head(200, {"Content-Length": str(len(data))})
        for i in range(len(data)):
            if self.owner.stopping.wait(float(seconds)):
                return
            self._body(name, data[i : i + 1])

    def _route_fail(self, rest: str, query) -> None:
        what, times, token, name = rest.split("/", 3)
        if not self.owner.should_fail(f"{what}/{times}/{token}/{name}", int(times)):
            return self._serve(name, self.owner.files[name])
        if what == "drop":
            return self._serve(name, self.owner.files[name], drop_half=True)
        headers = {"Retry-After": query["retry_after"][0]} if "retry_after" in query else {}
        self._answer(int(what), b"failing on purpose\n", headers)

    def _route_status(self, code: str, query) -> None:
        self._answer(int(code), f"status {code}\n".encode())

    def _route_redirect(self, rest: str, query) -> None:
        self._answer(302, b"", {"Location": query["to"][0]})

    def _route_hops(self, rest: str, query) -> None:
        count, _, name = rest.partition("/")
        location = f"/hops/{int(count) - 1}/{name}" if int(count) > 1 else f"/files/{name}"
        self._answer(302, b"", {"Location": location})

    def _route_loop(self, rest: str, query) -> None:
        self._answer(302, b"", {"Location": "/loop"})

    def _route_endless(self, rest: str, query) -> None:
        self.close_connection = True
        self._head(200, {"Connection": "close"})
        block = b"\0" * _CHUNK
        for _ in range(ENDLESS_MAX // _CHUNK):
            self._body("endless", block)

    def _route_claims(self, rest: str, query) -> None:
        length, _, name = rest.partition("/")
        self.close_connection = True
        self._head(200, {"Content-Length": length, "Connection": "close"})
        self._body(name, self.owner.files[name])

    def _route_host(self, rest: str, query) -> None:
        self._serve("host", (self.headers.get("Host") or "").encode())

    # -- helpers -------------------------------------------------------------------------------

    def _serve(self, name: str, data: bytes, *, ranges: bool = True, drop_half: bool = False,
               extra: dict[str, str] | None = None) -> None:
        span = _parse_range(self.headers.get("Range"), len(data)) if ranges else None
        if span == "unsatisfiable":
            return self._answer(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        status, body, headers = 200, data, {"Accept-Ranges": "bytes" if ranges else "none", **(extra or {})}
        if span is not None:
            first, last = span
            status, body = 206, data[first : last + 1]
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        headers["Content-Length"] = str(len(body))
        headers["ETag"] = f'"{zlib.crc32(data):08x}"'
        self._head(status, headers)
        if drop_half:
            self._body(name, body[: len(body) // 2])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._body(name, body)

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self._head(status, {**(headers or {}), "Content-Length": str(len(body))})
        self.wfile.write(body)

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.flush()

    def _body(self, name: str, data: bytes) -> None:
        for offset in range(0, len(data), _CHUNK):
            chunk = data[offset : offset + _CHUNK]
            self.wfile.write(chunk)
            self.owner.count_sent(name, len(chunk))
        self.wfile.flush()


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) of a single `bytes=` range, 'unsatisfiable', or None to send it all."""
    match = _RANGE.fullmatch((header or "").strip())
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:  # bytes=-N: the last N bytes
        return (max(0, size - int(match[2])), size - 1) if size else "unsatisfiable"
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    return (first, last) if first < size and first <= last else "unsatisfiable"


def self_signed_tls(host: str, folder: str) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for `host` and the PEM of its self-signed certificate (for clients
    to trust). Needs the `cryptography` package, which the S3 test servers bring along."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cert_path, "w") as f:
        f.write(cert_pem)
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_pem
