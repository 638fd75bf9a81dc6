"""http(s) sources against a real HTTP server on 127.0.0.1: range reads, retries, caps, redirects,
the private-network refusal (checked before any connection), and the per-process cache.

Nothing here connects anywhere but 127.0.0.1: an autouse guard fails any test that dials another
address, so a refusal that came too late (after connecting) is caught, not just its message.
"""

from __future__ import annotations

import io
import ipaddress
import os
import random
import re
import socket
import ssl

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.servers.http_server import HttpTestServer, self_signed_tls
from videoproc.common.errors import SourceError
from videoproc.common.testmedia import SAMPLE_CLIPS, Clip
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.source import http as http_source
from videoproc.source import safety
from videoproc.source.cache import BLOCK_SIZE, CACHE, BlockReader, BlockStore, cache_key, open_cached
from videoproc.source.options import SourceOptions
from videoproc.video.options import VideoOptions
from videoproc.video.process import VideoTask, process_video

# 30 s of 320x240 at 30 fps, a keyframe every 15 frames; the noise keeps x264 from squeezing it
# to nothing, so the file spans enough range-request blocks for the byte counts to mean something.
LONG_CLIP = Clip(
    name="long_noise_320x240_30s.mp4",
    args=(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=30",
        "-vf", "noise=alls=12:allf=t",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-g", "15", "-keyint_min", "15", "-sc_threshold", "0",
    ),
)
VIDEO = VideoOptions(num_frames=16, size=(64, 48))
OK = SourceOptions(allow_private_network=True)  # the test server is on 127.0.0.1


@pytest.fixture(scope="session")
def clips(clip_factory, tmp_path_factory) -> dict[str, str]:
    empty = tmp_path_factory.mktemp("empty") / "empty.mp4"
    empty.write_bytes(b"")
    return {"short.mp4": clip_factory(SAMPLE_CLIPS[0]), "long.mp4": clip_factory(LONG_CLIP), "empty.mp4": str(empty)}


@pytest.fixture(scope="session")
def server(clips):
    with HttpTestServer(clips) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server):
    CACHE.clear()
    server.reset()
    yield
    CACHE.clear()


@pytest.fixture(autouse=True)
def dialled(monkeypatch) -> list[tuple[str, int]]:
    """Every address dialled during the test; anything but 127.0.0.1 fails the test."""
    calls: list[tuple[str, int]] = []
    real = socket.socket.connect

    def guarded(sock, address):  # every TCP dial passes here, whichever library makes it
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return real(sock, address)  # a local socket (the worker pool's forkserver)
        calls.append((address[0], address[1]))
        if address[0] != "127.0.0.1":
            raise AssertionError(f"the client dialled {address}: tests may only reach 127.0.0.1")
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return calls


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """Backoff delays the client asked for, recorded instead of slept."""
    delays: list[float] = []
    monkeypatch.setattr(http_source, "_sleep", delays.append)
    return delays


@pytest.fixture
def fake_dns(monkeypatch):
    """Names under .test resolve to answers[name] the first time and to later[name] (when set)
    after that; every lookup is recorded. Other names resolve as usual."""
    answers: dict[str, list[str]] = {}
    later: dict[str, list[str]] = {}
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if not (isinstance(host, str) and host.endswith(".test")):
            return real(host, port, *args, **kwargs)
        ips = later.get(host, answers[host]) if host in lookups else answers[host]
        lookups.append(host)
        return [(_family(ip), socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, later, lookups


def _family(ip: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET


def run(uri: str, source: SourceOptions = OK):
    return process_video(VideoTask(row=0, id="v", uri=uri), video=VIDEO, source=source, threads=1)


def trusted(server, **options) -> SourceOptions:
    """Options that let the test server (127.0.0.1:PORT, and only it) through the private-network refusal."""
    return SourceOptions(allow_private_hosts=(f"127.0.0.1:{server.port}",), **options)


def read_all(uri: str, options: SourceOptions) -> bytes:
    reader = http_source.open_http(uri, options=options)
    try:
        return reader.read()
    finally:
        reader.close()


# -- address classification (pure) ---------------------------------------------------------


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("192.168.1.20", "private"),
        ("172.16.5.4", "private"),
        ("fd00:ec2::254", "metadata"),  # AWS metadata over IPv6
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("100.100.100.200", "metadata"),  # Alibaba metadata, inside the shared address space
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_non_public_reason(address, reason):
    got = safety.non_public_reason(ipaddress.ip_address(address))
    assert got == reason if reason is None else got.startswith(reason)


@pytest.mark.parametrize(
    "host, allowed, ok",
    [
        ("videos.example.com", ("example.com",), True),
        ("example.com", ("example.com",), True),
        ("a.b.example.com", (".example.com",), True),
        ("evil-example.com", ("example.com",), False),
        ("example.com.evil.net", ("example.com",), False),
        ("cdn.other.org", ("example.com", "other.org"), True),
        ("anything.net", (), True),
    ],
)
def test_allowed_domains_match_exact_host_or_subdomain(host, allowed, ok):
    if ok:
        safety.check_domain(host, allowed, url=f"https://{host}/v.mp4")
    else:
        with pytest.raises(SourceError, match=rf"host '{host}' of https://{host}/v.mp4 is not in --allowed-domains"):
            safety.check_domain(host, allowed, url=f"https://{host}/v.mp4")


def test_credentials_are_redacted_from_messages():
    assert safety.redact("https://user:secret@videos.example.com/a.mp4") == "https://videos.example.com/a.mp4"


# -- refusals happen before any connection -----------------------------------------------


def test_server_on_loopback_is_refused_by_default(server, dialled):
    result = run(server.url("files/short.mp4"), SourceOptions())
    assert result.status == "failed"
    assert "127.0.0.1 is a loopback address" in result.error
    assert "--allow-private-network" in result.error
    assert server.requests == [] and dialled == []


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://10.0.0.1/v.mp4", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/v.mp4", "link-local"),
        ("http://224.0.0.1/v.mp4", "multicast"),
        ("http://0.0.0.0:8080/v.mp4", "unspecified"),
        ("http://[::ffff:127.0.0.1]/v.mp4", "loopback"),
        ("http://0x7f.1/v.mp4", "loopback"),  # inet_aton spelling of 127.0.0.1
        ("http://localhost/v.mp4", "loopback"),
    ],
)
def test_private_urls_are_failed_rows_without_a_connection(url, reason, dialled):
    result = run(url, SourceOptions())
    assert result.status == "failed"
    assert f"is a {reason}" in result.error and "refused" in result.error
    assert dialled == []


def test_host_name_resolving_inside_is_refused(fake_dns, dialled):
    answers, _, _ = fake_dns
    answers["metadata.test"] = ["169.254.169.254"]
    with pytest.raises(SourceError, match=r"refused http://metadata.test/x: "
                                          r"metadata.test \(169.254.169.254\) is a link-local address"):
        read_all("http://metadata.test/x", SourceOptions())
    assert dialled == []


def test_one_private_address_among_public_ones_is_refused(fake_dns, dialled):
    answers, _, _ = fake_dns
    answers["mixed.test"] = ["93.184.216.34", "10.1.2.3"]
    with pytest.raises(SourceError, match=r"mixed.test \(10.1.2.3\) is a private address"):
        read_all("http://mixed.test/v.mp4", SourceOptions())
    assert dialled == []


def test_host_outside_allowed_domains_is_a_failed_row(server, dialled):
    options = SourceOptions(allow_private_network=True, allowed_domains=("videos.example.com",))
    result = run(server.url("files/short.mp4"), options)
    assert result.status == "failed"
    assert "host '127.0.0.1'" in result.error and "not in --allowed-domains" in result.error
    assert dialled == []


@pytest.mark.parametrize(
    "target, reason",
    [
        ("http://10.0.0.1/v.mp4", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254 is a link-local address"),
        ("http://[::1]:9/v.mp4", "::1 is a loopback address"),
    ],
)
def test_redirect_to_private_address_is_refused_before_connecting(server, dialled, target, reason):
    """The first hop (127.0.0.1:PORT) is allowed by --allow-private-hosts; the hop it redirects to is checked
    again, and refused, with only the test server ever dialled."""
    url = server.url(f"redirect?to={target}")
    with pytest.raises(SourceError, match=f"refused {re.escape(target)}: {re.escape(reason)}"):
        read_all(url, trusted(server))
    assert {ip for ip, _ in dialled} == {"127.0.0.1"}
    assert len(server.requests) == 1 and server.requests[0].path.startswith("/redirect?to=")


def test_redirect_to_name_resolving_inside_is_refused(server, dialled, fake_dns):
    answers, _, _ = fake_dns
    answers["metadata.test"] = ["169.254.169.254"]
    with pytest.raises(SourceError, match=r"metadata.test \(169.254.169.254\) is a link-local address"):
        read_all(server.url("redirect?to=http://metadata.test/x"), trusted(server))
    assert {ip for ip, _ in dialled} == {"127.0.0.1"}


def test_redirect_to_another_scheme_is_refused(server):
    with pytest.raises(SourceError, match=r"file:///etc/passwd is not an http\(s\) URL"):
        read_all(server.url("redirect?to=file:///etc/passwd"), OK)


@pytest.mark.parametrize("route", ["close/long.mp4", "fail/drop/1/rebind/long.mp4"])
def test_connects_to_the_checked_address_with_the_host_name_in_host_header(server, fake_dns, dialled, sleeps, route):
    """DNS rebinding: the name answers 127.0.0.1 when checked and 10.9.9.9 afterwards. Across
    reconnects (a server that closes every connection; a connection dropped and retried) the
    client keeps dialling the checked address, and still says the name in its Host header."""
    answers, later, lookups = fake_dns
    answers["videos.test"], later["videos.test"] = ["127.0.0.1"], ["10.9.9.9"]
    url = server.url(route, host="videos.test")
    data = read_all(url, trusted(server, cache_entries=0))
    assert data == server.files["long.mp4"]
    assert len(dialled) > 1 and lookups == ["videos.test"]
    assert {ip for ip, _ in dialled} == {"127.0.0.1"}
    assert {r.host for r in server.requests} == {f"videos.test:{server.port}"}


def test_https_sends_sni_and_checks_the_certificate_for_the_host_name(tmp_path, fake_dns, monkeypatch, clips):
    tls, cert_pem = self_signed_tls("videos.test", str(tmp_path))
    answers, _, _ = fake_dns
    answers["videos.test"] = ["127.0.0.1"]
    with HttpTestServer(clips, tls=tls) as srv:
        url = srv.url("host", host="videos.test")
        with pytest.raises(SourceError, match=r"TLS certificate of https://videos.test:\d+/host "
                                              r"is not valid .*not retried"):
            read_all(url, trusted(srv))
        assert srv.requests == []
        monkeypatch.setattr(http_source, "_ssl_context", lambda: ssl.create_default_context(cadata=cert_pem))
        assert read_all(url, trusted(srv)) == f"videos.test:{srv.port}".encode()
    assert set(srv.sni) == {"videos.test"}


def test_https_refuses_a_certificate_made_out_to_another_name(tmp_path, fake_dns, monkeypatch, clips):
    """The socket goes to the checked IP, so the certificate must still be checked against the
    URL's host name, not against the IP or whatever the server presents."""
    tls, cert_pem = self_signed_tls("other.test", str(tmp_path))
    answers, _, _ = fake_dns
    answers["videos.test"] = ["127.0.0.1"]
    monkeypatch.setattr(http_source, "_ssl_context", lambda: ssl.create_default_context(cadata=cert_pem))
    with HttpTestServer(clips, tls=tls) as srv:
        with pytest.raises(SourceError, match=r"TLS certificate of https://videos.test:\d+/host is not valid "
                                              r"\(Hostname mismatch.*'videos.test'.*\); not retried"):
            read_all(srv.url("host", host="videos.test"), trusted(srv))
        assert srv.requests == []
    assert set(srv.sni) == {"videos.test"}


# -- good servers ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["files", "norange"])
@pytest.mark.parametrize("name", ["short.mp4", "long.mp4"])
def test_http_video_decodes_to_the_same_frames_as_the_local_file(server, clips, route, name):
    local = run(clips[name])
    remote = run(server.url(f"{route}/{name}"))
    assert remote.status == "ok", remote.error
    assert remote.frame_indices == local.frame_indices
    assert remote.frames == local.frames
    assert remote.source == local.source


def test_range_reads_fetch_only_the_blocks_asked_for(server):
    size = len(server.files["long.mp4"])
    reader = http_source.open_http(server.url("files/long.mp4"), options=OK)
    reader.seek(size - 100)
    tail = reader.read()
    reader.seek(5 * BLOCK_SIZE + 10)
    middle = reader.read(1000)
    reader.close()
    assert tail == server.files["long.mp4"][-100:]
    assert middle == server.files["long.mp4"][5 * BLOCK_SIZE + 10 : 5 * BLOCK_SIZE + 1010]
    assert server.sent["long.mp4"] <= 3 * BLOCK_SIZE
    assert [r.range for r in server.requests][0] == f"bytes=0-{BLOCK_SIZE - 1}"


def test_range_requests_reuse_one_connection(server, dialled):
    """Keep-alive: every range request of one open object goes over the same connection (a new
    TCP, and over https TLS, handshake per 64 KiB block would cost more than the block)."""
    data = read_all(server.url("files/long.mp4"), trusted(server, cache_entries=0))
    assert data == server.files["long.mp4"]
    assert len(server.requests) > 3 and len(dialled) == 1


def test_sixteen_frames_of_a_long_video_stay_within_the_cap(server, clips):
    """Bytes the server sent for 16 frames, against the file size; the cap is the file size, so
    fetching any block twice (or more than the file) would fail the row."""
    size = os.path.getsize(clips["long.mp4"])
    result = run(server.url("files/long.mp4"), SourceOptions(allow_private_network=True, max_download_bytes=size))
    sent = server.sent["long.mp4"]
    print(f"\n16 frames of a {size}-byte video over HTTP: {sent} bytes sent ({sent / size:.1%}), "
          f"{len(server.requests)} requests, demuxer read {result.bytes_read} bytes")
    assert result.status == "ok", result.error
    assert 0 < sent <= size


def test_sixteen_frames_of_a_long_video_fetch_a_fraction_of_it(server, clips):
    size = os.path.getsize(clips["long.mp4"])
    assert run(server.url("files/long.mp4")).status == "ok"
    assert server.sent["long.mp4"] < 0.5 * size


def test_repeated_uri_is_fetched_once_per_process(server):
    first, second = run(server.url("files/short.mp4")), run(server.url("files/short.mp4"))
    assert first.status == second.status == "ok"
    assert first.frames == second.frames
    assert server.sent["short.mp4"] == len(server.files["short.mp4"])


def test_cache_keeps_only_cache_entries_objects(server):
    options = SourceOptions(allow_private_network=True, cache_entries=1)
    for route in ("files/short.mp4", "hops/1/short.mp4", "files/short.mp4"):
        assert run(server.url(route), options).status == "ok"
    assert server.sent["short.mp4"] == 3 * len(server.files["short.mp4"])
    assert len(CACHE) == 1


def test_cache_off_fetches_every_time(server):
    options = SourceOptions(allow_private_network=True, cache_entries=0)
    run(server.url("files/short.mp4"), options), run(server.url("files/short.mp4"), options)
    assert server.sent["short.mp4"] == 2 * len(server.files["short.mp4"])
    assert len(CACHE) == 0


def test_cached_copy_does_not_bypass_a_stricter_check(server, dialled):
    assert run(server.url("files/short.mp4")).status == "ok"
    result = run(server.url("files/short.mp4"), SourceOptions())
    assert result.status == "failed" and "loopback" in result.error


def test_redirects_within_the_limit_are_followed(server):
    result = run(server.url("hops/3/short.mp4"), SourceOptions(allow_private_network=True, max_redirects=3))
    assert result.status == "ok", result.error


# -- misbehaving servers end as failed rows ----------------------------------------------------


def test_404_is_a_failed_row_and_not_retried(server, sleeps):
    result = run(server.url("status/404"))
    assert result.status == "failed"
    assert result.error.startswith(f"HTTP 404 for {server.url('status/404')}")
    assert len(server.requests) == 1 and sleeps == []


def test_500_then_200_succeeds_after_one_backoff(server, clips, sleeps):
    result = run(server.url("fail/500/1/a/short.mp4"))
    assert result.status == "ok", result.error
    assert result.frames == run(clips["short.mp4"]).frames
    assert len(sleeps) == 1 and 0.5 * http_source.BACKOFF_BASE_S <= sleeps[0] <= http_source.BACKOFF_BASE_S


def test_429_then_200_waits_what_retry_after_says(server, sleeps):
    result = run(server.url("fail/429/1/b/short.mp4?retry_after=7"))
    assert result.status == "ok", result.error
    assert sleeps == [7.0]


def test_retry_after_beyond_reason_gives_up_at_once(server, sleeps):
    result = run(server.url("fail/429/9/c/short.mp4?retry_after=3600"))
    assert result.status == "failed"
    assert "HTTP 429 for" in result.error and "retry after 3600 s, longer than the 60 s" in result.error
    assert sleeps == []


def test_persistent_5xx_gives_up_after_the_retries_with_growing_backoff(server, sleeps):
    result = run(server.url("fail/503/99/d/short.mp4"))
    assert result.status == "failed"
    assert result.error.startswith(f"HTTP 503 for {server.url('fail/503/99/d/short.mp4')}; gave up after 4 attempts")
    assert len(server.requests) == 4
    bounds = [http_source.BACKOFF_BASE_S * 2**i for i in range(3)]
    assert all(b / 2 <= s <= b for s, b in zip(sleeps, bounds, strict=True))


def test_connection_dropped_mid_body_is_retried(server, clips, sleeps):
    result = run(server.url("fail/drop/1/e/short.mp4"))
    assert result.status == "ok", result.error
    assert result.frames == run(clips["short.mp4"]).frames
    assert len(sleeps) == 1


def test_connection_always_dropped_is_a_failed_row(server):
    result = run(server.url("fail/drop/99/f/short.mp4"), SourceOptions(allow_private_network=True, http_retries=1))
    assert result.status == "failed"
    assert "closed with" in result.error and "bytes of the body still missing" in result.error
    assert "gave up after 2 attempts" in result.error


def test_slow_server_hits_the_read_timeout(server):
    options = SourceOptions(allow_private_network=True, read_timeout=0.2, http_retries=0)
    result = run(server.url("slow/30/short.mp4"), options)
    assert result.status == "failed"
    assert result.error.startswith(f"no data from {server.url('slow/30/short.mp4')} for 0.2 s (read_timeout)")


def test_refused_connection_is_retried_then_a_failed_row(sleeps):
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(f"http://127.0.0.1:{port}/v.mp4", SourceOptions(allow_private_network=True, http_retries=2))
    assert result.status == "failed"
    assert f"cannot connect to 127.0.0.1 (127.0.0.1) port {port}" in result.error
    assert "gave up after 3 attempts" in result.error and len(sleeps) == 2


def test_redirect_loop_stops_at_the_limit(server):
    result = run(server.url("loop"))
    assert result.status == "failed"
    assert result.error.startswith(f"more than 5 redirects starting at {server.url('loop')}")
    assert len(server.requests) == 6


def test_one_redirect_too_many_is_refused(server):
    result = run(server.url("hops/4/short.mp4"), SourceOptions(allow_private_network=True, max_redirects=3))
    assert result.status == "failed" and "more than 3 redirects" in result.error


def test_content_length_over_the_cap_is_refused_up_front(server):
    result = run(server.url("claims/10000000000/short.mp4"))
    assert result.status == "failed"
    assert "is 10000000000 bytes (by its Content-Length), over the max_download_bytes cap" in result.error


def test_object_over_the_cap_is_refused_by_its_content_range(server):
    cap = len(server.files["long.mp4"]) - 1
    result = run(server.url("files/long.mp4"), SourceOptions(allow_private_network=True, max_download_bytes=cap))
    assert result.status == "failed"
    assert f"(by its Content-Range), over the max_download_bytes cap of {cap}" in result.error
    assert server.sent["long.mp4"] <= BLOCK_SIZE


def test_body_without_length_is_cut_at_the_cap(server):
    cap = 1_000_000
    result = run(server.url("endless"), SourceOptions(allow_private_network=True, max_download_bytes=cap))
    assert result.status == "failed"
    assert f"sent more than the max_download_bytes cap of {cap} bytes" in result.error


def test_content_length_longer_than_the_body_is_a_failed_row(server):
    claimed = len(server.files["short.mp4"]) + 5000
    result = run(server.url(f"claims/{claimed}/short.mp4"), SourceOptions(allow_private_network=True, http_retries=1))
    assert result.status == "failed"
    assert "closed with 5000 bytes of the body still missing" in result.error


def test_empty_object_is_a_failed_row(server):
    result = run(server.url("files/empty.mp4"))
    assert result.status == "failed"
    assert result.error.startswith(f"HTTP 416 for {server.url('files/empty.mp4')}: the server has no bytes to send")


def test_content_length_shorter_than_the_body_is_a_failed_row(server):
    result = run(server.url("claims/20000/short.mp4"))
    assert result.status == "failed"
    assert result.error  # the demuxer meets a truncated file; what it says is FFmpeg's


def test_preprocess_run_finishes_with_a_failed_row_per_bad_url(server, tmp_path):
    """The whole job: good and bad http URLs in one manifest; the run completes, every bad one
    is a failed row carrying its reason."""
    from videoproc.preprocess.job import run_preprocess

    uris = {
        "good": server.url("files/short.mp4"),
        "missing": server.url("status/404"),
        "loop": server.url("loop"),
        "metadata": "http://169.254.169.254/latest/meta-data/",
    }
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(pa.table({"id": list(uris), "uri": list(uris.values())}), manifest)
    options = PreprocessOptions(
        manifest=str(manifest),
        output=str(tmp_path / "out"),
        video=VIDEO,
        # 127.0.0.1 must be allowed for the good row, so the metadata row shows the refusal of
        # link-local addresses, which --allow-private-network lifts too: use allowed_domains.
        source=SourceOptions(allow_private_network=True, allowed_domains=("127.0.0.1",), http_retries=0),
        run=RunOptions(workers=1, progress="off"),
    )
    run_preprocess(options)
    rows = pq.read_table(tmp_path / "out" / "data").to_pylist()
    errors = {r["id"]: r["error"] for r in rows}
    assert {r["id"]: r["status"] for r in rows} == {"good": "ok", "missing": "failed", "loop": "failed",
                                                    "metadata": "failed"}
    assert errors["missing"].startswith("HTTP 404 for")
    assert "more than 5 redirects" in errors["loop"]
    assert "host '169.254.169.254'" in errors["metadata"] and "not in --allowed-domains" in errors["metadata"]


# -- the block reader and retry arithmetic (pure) ----------------------------------------------


def test_block_reader_matches_slicing_under_random_seeks():
    data = bytes(random.Random(1).randbytes(3 * BLOCK_SIZE + 12345))
    calls: list[tuple[int, int]] = []

    def fetch(start, end):
        calls.append((start, end))
        return data[start:end]

    reader = BlockReader(BlockStore(size=len(data), budget=2 * BLOCK_SIZE), fetch)
    rng = random.Random(2)
    for _ in range(200):
        pos, n = rng.randrange(len(data) + 10), rng.randrange(-1, 3 * BLOCK_SIZE)
        reader.seek(pos)
        assert reader.read(n) == (data[pos:] if n < 0 else data[pos : pos + n])
    reader.seek(-10, io.SEEK_END)
    assert reader.tell() == len(data) - 10 and reader.size() == len(data)
    assert all(start % BLOCK_SIZE == 0 and end <= len(data) for start, end in calls)


def test_sequential_misses_grow_the_request_size():
    size = 20 * BLOCK_SIZE
    calls: list[tuple[int, int]] = []
    reader = BlockReader(BlockStore(size=size, budget=size), lambda s, e: calls.append((s, e)) or bytes(e - s))
    while reader.read(4096):
        pass
    lengths = [(e - s) // BLOCK_SIZE for s, e in calls]
    assert lengths == [1, 1, 2, 4, 8, 4]


def test_open_cached_reuses_blocks_and_forgets_failures():
    """The seam any source can use (an fsspec file's cat_file as `fetch`)."""
    data = bytes(range(256)) * 1000
    calls: list[tuple[int, int]] = []

    def fetch(start, end):
        calls.append((start, end))
        if start >= len(data) // 2 and fail:
            raise OSError("storage is down")
        return data[start:end]

    def open_it():
        make = lambda budget: BlockStore(size=len(data), budget=budget)  # noqa: E731
        return open_cached(cache_key("mem://v.mp4", OK), entries=2, make_store=make, fetch=fetch)

    fail = False
    assert open_it().read() == data
    fetched = len(calls)
    assert open_it().read() == data and len(calls) == fetched
    CACHE.clear()
    fail = True
    reader = open_it()
    with pytest.raises(OSError, match="storage is down"):
        reader.read()
    assert len(CACHE) == 0


def test_block_store_keeps_its_budget():
    store = BlockStore(size=10 * BLOCK_SIZE, budget=3 * BLOCK_SIZE)
    store.put_range(0, bytes(10 * BLOCK_SIZE))
    assert store.nbytes == 3 * BLOCK_SIZE and store.has(9) and not store.has(6)


@pytest.mark.parametrize(
    "value, seconds",
    [("7", 7.0), (" 0 ", 0.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_parse_retry_after(value, seconds):
    assert http_source.parse_retry_after(value) == seconds


def test_backoff_doubles_with_jitter_and_is_capped():
    for attempt in range(1, 12):
        top = min(http_source.BACKOFF_MAX_S, http_source.BACKOFF_BASE_S * 2 ** (attempt - 1))
        assert top / 2 <= http_source.backoff_delay(attempt) <= top
    assert http_source.backoff_delay(3, retry_after=2.5) == 2.5


def test_frames_are_identical_arrays_not_just_equal_bytes(server, clips):
    """Guard against both sides being empty: the decoded tensor has the requested shape."""
    remote = run(server.url("files/short.mp4"))
    frames = np.frombuffer(remote.frames, np.uint8).reshape(remote.shape)
    assert frames.shape == (16, 48, 64, 3) and frames.std() > 0
