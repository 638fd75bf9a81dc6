"""The rules every row's URI meets before anything is read: one parser for the scheme, the
IANA deny list for addresses (address by address), --allow-private-hosts, --allowed-prefixes, the
run's own output, and a failed row (never a dead worker) for an exception nobody foresaw.

Nothing here connects anywhere: an autouse guard fails any test that dials out, so a refusal that
came after a connection would be caught, not just its message.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket

import pytest

from videoproc.common.errors import OptionsError, SourceError
from videoproc.source import addresses, safety
from videoproc.source.options import SourceOptions
from videoproc.source.prefixes import check_location, normalise_location
from videoproc.source.uri import parse_uri
from videoproc.video.options import VideoOptions
from videoproc.video.process import VideoTask, process_video

VIDEO = VideoOptions(num_frames=4, size=(32, 24))


@pytest.fixture(autouse=True)
def no_connections(monkeypatch):
    real = socket.socket.connect

    def refuse(sock, address):  # every TCP dial passes here, whichever library makes it
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return real(sock, address)  # a local socket (a worker pool's forkserver)
        raise AssertionError(f"dialled {address}: these tests must refuse before connecting")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def run(uri: str, source: SourceOptions = SourceOptions()):
    return process_video(VideoTask(row=0, id="v", uri=uri), video=VIDEO, source=source, threads=1)


# -- one parser --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri, scheme, path",
    [
        ("videos/a.mp4", "", "videos/a.mp4"),
        ("/abs/a.mp4", "", "/abs/a.mp4"),
        ("C:\\videos\\a.mp4", "", "C:\\videos\\a.mp4"),
        ("file:///abs/a%20b.mp4", "file", "/abs/a b.mp4"),
        ("file://localhost/abs/a.mp4", "file", "/abs/a.mp4"),
        ("data:video/mp4;base64,AAAA::", "data", None),
        ("HTTPS://host/a.mp4", "https", None),
        ("http://[::1]:8080/a.mp4", "http", None),
        ("s3://bucket/key.mp4", "s3", None),
        ("gs://bucket/key.mp4", "gs", None),
    ],
)
def test_parse_uri_accepts(uri, scheme, path):
    parsed = parse_uri(uri)
    assert (parsed.scheme, parsed.path) == (scheme, path)


@pytest.mark.parametrize(
    "uri, message",
    [
        ("s3:x/outside.mp4", r"URI 's3:x/outside.mp4' has the scheme 's3' but no '//' after it, "
                             r"so it is neither a URL nor a plain path; "
                             r"write s3://HOST/PATH for a URL, or ./s3:x/outside.mp4 for a local file"),
        ("file:/etc/passwd", r"has the scheme 'file' but no '//' after it.*write file:///PATH for a URL"),
        ("https:evil.example/x", r"has the scheme 'https' but no '//'"),
        ("s3://b/k::http://127.0.0.1/x", r"contains '::', which chains a second protocol \(fsspec URL chaining\)"
                                         r".*give one plain URL"),
        ("http://[::1]/a::b", r"contains '::'"),
        ("local::s3://b/k", r"contains '::'"),
        ("ftp://host/a.mp4", r"URI scheme 'ftp' is not supported .*object store: .*s3://"),
        ("file://otherhost/a.mp4", r"file:// URI names a remote host 'otherhost'; use file:///path"),
        ("", r"URI '' is empty; every row needs a path or URL"),
    ],
)
def test_parse_uri_refuses(uri, message):
    with pytest.raises(SourceError, match=message):
        parse_uri(uri)


@pytest.mark.parametrize("uri", ["s3:x/outside.mp4", "s3://b/k.mp4::http://127.0.0.1/x", "memory://b/k::file:///etc/passwd"])
def test_refused_uris_are_failed_rows_naming_the_rule(uri):
    result = run(uri, SourceOptions(local_root="/tmp"))
    assert result.status == "failed"
    assert "'::'" in result.error or "no '//'" in result.error


def test_scheme_without_slashes_does_not_escape_local_root(tmp_path):
    """`s3:x/outside` used to be read as the local path 's3:x/outside', relative to anything."""
    (tmp_path / "s3:x").mkdir()
    (tmp_path / "s3:x" / "outside.mp4").write_bytes(b"not read")
    result = run("s3:x/outside.mp4", SourceOptions(local_root=str(tmp_path / "root")))
    assert result.status == "failed" and "no '//' after it" in result.error


# -- regular files only ------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_fifo_and_devices_and_directories_are_refused(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    cases = {
        str(fifo): "is a FIFO (named pipe), not a regular file; only regular files are read",
        "/dev/zero": "/dev/zero is a character device, not a regular file",
        "/dev/null": "/dev/null is a character device, not a regular file",
        str(tmp_path): "is a directory, not a video file",
    }
    for uri, message in cases.items():
        result = run(uri)
        assert result.status == "failed" and message in result.error, (uri, result.error)


def test_symlink_to_a_device_is_refused(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.mp4")
    result = run(str(tmp_path / "zero.mp4"))
    assert result.status == "failed" and "/dev/zero is a character device" in result.error


# -- an exception nobody foresaw ---------------------------------------------------------------


def test_unexpected_exception_is_a_failed_row_naming_its_type(monkeypatch, sample_clips):
    import videoproc.video.process as process

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(process, "_extract", broken)
    result = run(sample_clips["vfr.mkv"])
    assert result.status == "failed"
    assert result.error == "unexpected error TypeError: unsupported operand; please report it with this row's URI"


# -- the address deny list, address by address -------------------------------------------------


def _edges(entry: addresses.Special) -> list[str]:
    net = entry.network
    return [str(net.network_address), str(net.broadcast_address)]


@pytest.mark.parametrize(
    "entry, address",
    [(e, a) for e in addresses.SPECIAL_PURPOSE for a in _edges(e)],
    ids=[f"{e.network}-{a}" for e in addresses.SPECIAL_PURPOSE for a in _edges(e)],
)
def test_every_registry_entry_is_refused_at_both_ends(entry, address):
    found = addresses.special_purpose_entry(ipaddress.ip_address(address))
    assert found is not None, address
    assert found.network.subnet_of(entry.network) or entry.network.subnet_of(found.network)


@pytest.mark.parametrize(
    "address, kind, network",
    [
        ("fec0::1", "private", "fec0::/10"),  # site-local: global to Python 3.11.7's flags
        ("192.0.0.5", "special-purpose", "192.0.0.0/24"),  # also global to 3.11.7
        ("192.0.0.9", "special-purpose", "192.0.0.0/24"),
        ("169.254.169.254", "link-local", "169.254.169.254/32"),
        ("169.254.1.1", "link-local", "169.254.0.0/16"),
        ("100.100.100.200", "metadata", "100.100.100.200/32"),
        ("fd00:ec2::254", "metadata", "fd00:ec2::254/128"),
        ("100.64.0.1", "shared", "100.64.0.0/10"),
        ("::ffff:10.0.0.1", "private", "10.0.0.0/8"),  # IPv4-mapped
        ("2002:a00:1::1", "private", "10.0.0.0/8"),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local", "169.254.169.254/32"),  # NAT64 of the metadata address
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "special-purpose", "2001::/32"),  # Teredo
        ("::10.0.0.1", "reserved", "::/3"),  # IPv4-compatible, deprecated
        ("1::1", "reserved", "::/3"),
        ("c000::1", "reserved", "8000::/1"),
        ("255.255.255.255", "broadcast", "255.255.255.255/32"),
    ],
)
def test_named_addresses(address, kind, network):
    entry = addresses.special_purpose_entry(ipaddress.ip_address(address))
    assert entry is not None and (entry.kind, str(entry.network)) == (kind, network)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2001:4860:4860::8888", "2606:4700::1111",
                "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"],
)
def test_public_addresses_pass(address):
    assert addresses.special_purpose_entry(ipaddress.ip_address(address)) is None


def test_refusal_names_the_range_and_the_fix():
    result = run("http://[fec0::1]/v.mp4")
    assert result.status == "failed"
    assert result.error == (
        "refused http://[fec0::1]/v.mp4: fec0::1 is a private address (fec0::/10, site-local (deprecated), "
        "RFC 3879), and URLs in a manifest may only reach public addresses; if this host is trusted, add it "
        "to --allow-private-hosts, or pass --allow-private-network to allow every private address"
    )


# -- --allow-private-hosts ---------------------------------------------------------------------


def _allowed(url: str, *entries: str) -> bool:
    try:
        safety.check_url(url, options=SourceOptions(allow_private_hosts=entries))
    except SourceError:
        return False
    return True


@pytest.mark.parametrize(
    "url, entries, ok",
    [
        ("http://10.1.2.3:8080/v.mp4", ("10.1.2.3:8080",), True),
        ("http://10.1.2.3:8081/v.mp4", ("10.1.2.3:8080",), False),  # another port
        ("http://10.1.2.3/v.mp4", ("10.0.0.0/8",), True),
        ("http://10.1.2.3/v.mp4", ("192.168.0.0/16",), False),
        ("http://[fd00::5]:8080/v.mp4", ("[fd00::5]:8080",), True),
        ("http://[::ffff:10.1.2.3]/v.mp4", ("10.1.2.3",), True),
        ("http://localhost:9000/v.mp4", ("localhost:9000",), True),  # a name written out
        ("http://localhost:9001/v.mp4", ("localhost:9000",), False),
        # Link-local and metadata addresses only when named exactly, never by a wider range.
        ("http://169.254.169.254/latest/", ("0.0.0.0/0",), False),
        ("http://169.254.169.254/latest/", ("169.254.0.0/16",), False),
        ("http://169.254.169.254/latest/", ("169.254.169.254",), True),
        ("http://169.254.1.1/v.mp4", ("0.0.0.0/0",), False),
        ("http://169.254.1.1/v.mp4", ("169.254.0.0/16",), True),
        ("http://[fe80::1]/v.mp4", ("::/0",), False),
        ("http://[fe80::1]/v.mp4", ("fe80::/10",), True),
        ("http://100.100.100.200/v.mp4", ("100.64.0.0/10",), False),
    ],
)
def test_allow_private_hosts(url, entries, ok):
    assert _allowed(url, *entries) is ok


@pytest.mark.parametrize(
    "entry, message",
    [
        ("not a host", r"allow_private_hosts entry 'not a host' is not a CIDR \(10.0.0.0/8\), an address"),
        ("10.0.0.0/8:80", r"allow_private_hosts entry '10.0.0.0/8:80' is not a CIDR"),
        ("10.0.0.1:99999", r"allow_private_hosts entry '10.0.0.1:99999' has port '99999'; "
                           r"a port is a number from 1 to 65535"),
    ],
)
def test_bad_private_host_entries_are_refused_at_start(entry, message):
    with pytest.raises(OptionsError, match=message):
        SourceOptions(allow_private_hosts=(entry,))


# -- --allowed-prefixes and the run's own output -----------------------------------------------


def _check(uri: str, **options) -> str | None:
    try:
        parsed = parse_uri(uri)
        check_location(parsed, real_path=parsed.path and os.path.realpath(parsed.path),
                       options=SourceOptions(**options))
    except SourceError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    "uri, prefixes, ok",
    [
        ("s3://bucket/videos/a.mp4", ("s3://bucket/videos",), True),
        ("s3://bucket/videos/a.mp4", ("s3://bucket/videos/",), True),
        ("s3a://bucket/videos/a.mp4", ("s3://bucket/videos",), True),  # an alias of the same store
        ("s3://bucket/videos-private/a.mp4", ("s3://bucket/videos",), False),  # segment boundary
        ("s3://other/videos/a.mp4", ("s3://bucket/videos",), False),
        ("gs://bucket/videos/a.mp4", ("s3://bucket/videos",), False),
        ("https://cdn.example.com/videos/a.mp4?sig=1", ("https://cdn.example.com/videos",), True),
        ("https://CDN.example.com/videos/a.mp4", ("https://cdn.example.com/videos",), True),
        ("https://cdn.example.com/videos/%2e%2e/secret.mp4", ("https://cdn.example.com/videos",), False),
        ("s3://bucket/videos/../secrets/a.mp4", ("s3://bucket/videos",), False),
        ("data:video/mp4;base64,AAAA", ("s3://bucket/videos",), True),  # no location to check
    ],
)
def test_allowed_prefixes(uri, prefixes, ok):
    error = _check(uri, allowed_prefixes=prefixes)
    assert (error is None) is ok, error


def test_prefix_refusal_message():
    error = _check("s3://other/a.mp4", allowed_prefixes=("s3://bucket/videos",))
    assert error == ("s3://other/a.mp4 (as s3://other/a.mp4) is not under --allowed-prefixes (s3://bucket/videos); "
                     "rows may only read there: fix the row or add its prefix to --allowed-prefixes")


def test_local_prefix_is_compared_as_a_real_path(tmp_path, sample_clips):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(sample_clips["vfr.mkv"], allowed / "vfr.mkv")
    os.symlink(sample_clips["vfr.mkv"], allowed / "escape.mkv")
    options = SourceOptions(allowed_prefixes=(str(allowed),))
    assert run(str(allowed / "vfr.mkv"), options).status == "ok"
    for uri in (str(allowed / "escape.mkv"), str(allowed / ".." / "allowed-not" / "x.mkv"), sample_clips["vfr.mkv"]):
        result = run(uri, options)
        assert result.status == "failed" and "is not under --allowed-prefixes" in result.error, result.error


@pytest.mark.parametrize(
    "uri, output",
    [
        ("s3://bucket/run/data/part-000000.parquet", "s3://bucket/run"),
        ("s3a://bucket/run/data/.part-000000.parquet.tmp", "s3://bucket/run/"),
        ("gcs://bucket/run/done/0", "gs://bucket/run"),
    ],
)
def test_rows_inside_the_runs_own_output_are_refused(uri, output):
    error = _check(uri, own_output=output)
    assert error is not None and f"is inside this run's own output ({normalise_location(output)})" in error
    assert _check(uri.replace("/run/", "/input/"), own_output=output) is None


def test_own_output_is_refused_for_local_runs(tmp_path):
    output = tmp_path / "out"
    (output / "data").mkdir(parents=True)
    (output / "data" / "part-000000.parquet").write_bytes(b"PAR1")
    result = run(str(output / "data" / "part-000000.parquet"), SourceOptions(own_output=str(output)))
    assert result.status == "failed"
    assert f"is inside this run's own output ({output}); a run never reads its own output" in result.error


def test_build_options_passes_the_output_and_lists(tmp_path):
    from videoproc.preprocess.config import build_options

    options = build_options(manifest="m.parquet", values={
        "output": str(tmp_path / "out"), "allowed_prefixes": "s3://b/in, /data/videos",
        "allow_private_hosts": ["10.0.0.5:8080"],
    })
    assert options.source.own_output == str(tmp_path / "out")
    assert options.source.allowed_prefixes == ("s3://b/in", "/data/videos")
    assert options.source.allow_private_hosts == ("10.0.0.5:8080",)
    with pytest.raises(OptionsError, match=r"allowed_prefixes entry 'ftp://x/y' is not usable: "
                                           r"URI scheme 'ftp' is not supported"):
        build_options(manifest="m.parquet", values={"output": "out", "allowed_prefixes": "ftp://x/y"})
