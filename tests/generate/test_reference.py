"""Reading `input_reference` images: local paths, file:// and data: URIs, and every rule that
refuses one (regular files only, roots, prefixes, addresses, size, format, deadline)."""

from __future__ import annotations

import base64
import os
import pathlib
import shutil
import socket
import time

import pytest

from tests.servers.http_server import HttpTestServer
from videoproc.common.errors import OptionsError
from videoproc.generate.options import ReferenceRules
from videoproc.generate.reference import load_reference
from videoproc.generate.requests import RequestError
from videoproc.source.options import SourceOptions


def test_local_path(reference_png):
    image = load_reference(reference_png)
    assert image.size == (32, 32) and image.mode == "RGB" and image.getpixel((0, 0)) == (255, 0, 0)


def test_file_uri(reference_png):
    assert load_reference(pathlib.Path(reference_png).as_uri()).getpixel((31, 31)) == (255, 255, 255)


def test_data_uri(reference_png):
    payload = base64.b64encode(pathlib.Path(reference_png).read_bytes()).decode()
    assert load_reference(f"data:image/png;base64,{payload}").getpixel((0, 31)) == (0, 0, 255)


def test_bad_base64():
    with pytest.raises(RequestError, match=r"data URI payload is not valid base64"):
        load_reference("data:image/png;base64,@@@")


def test_missing_file(tmp_path):
    with pytest.raises(RequestError, match=r"file not found: .*nope\.png"):
        load_reference(str(tmp_path / "nope.png"))


def test_not_an_image(tmp_path):
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(RequestError, match=r"is not a readable image "
                                           r"\(no PNG, JPEG or WebP image found in its 5 bytes\); "
                                           r"point it at a PNG, JPEG or WebP file"):
        load_reference(str(tmp_path / "x.png"))


def test_unsupported_scheme():
    with pytest.raises(RequestError, match=r"URI scheme 'ftp' is not supported .* "
                                           r"use a local path, file:///PATH, data:, http\(s\)://"):
        load_reference("ftp://example.com/a.png")


# -- the source rules, in the process that holds the model ------------------------------------


def rules(**kwargs) -> SourceOptions:
    return ReferenceRules(**kwargs).source(output=None, storage_options={})


@pytest.fixture(autouse=True)
def no_dialling_out(monkeypatch):
    """Any connection to an address other than 127.0.0.1 fails the test: refusals come first."""
    real = socket.socket.connect

    def guarded(sock, address):  # every TCP dial passes here, whichever library makes it
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise AssertionError(f"dialled {address}: tests may only reach 127.0.0.1")
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def test_dev_zero_is_refused():
    with pytest.raises(RequestError, match=r"'/dev/zero': /dev/zero is a character device, not a regular file; "
                                           r"only regular files are read"):
        load_reference("/dev/zero")


@pytest.mark.timeout(20)
def test_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(RequestError, match=r"pipe\.png is a FIFO \(named pipe\), not a regular file"):
        load_reference(str(fifo))


def test_outside_local_root_is_refused(tmp_path, reference_png):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(RequestError, match=r"resolves to .*reference\.png, outside --local-root .*root; "
                                           r"local paths must stay inside"):
        load_reference(reference_png, options=rules(local_root=str(root)))
    os.symlink(reference_png, root / "link.png")
    with pytest.raises(RequestError, match=r"outside --local-root"):
        load_reference("link.png", options=rules(local_root=str(root)))


def test_inside_local_root_is_read(tmp_path, reference_png):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(reference_png, root / "ref.png")
    assert load_reference("ref.png", options=rules(local_root=str(root))).size == (32, 32)


def test_too_large_file_is_refused(reference_png):
    size = os.path.getsize(reference_png)
    with pytest.raises(RequestError, match=rf"is {size} bytes or more, over the max_reference_bytes cap of 100; "
                                           r".*--max-reference-bytes"):
        load_reference(reference_png, options=rules(max_bytes=100))


def test_too_large_data_uri_is_refused_naming_this_stages_cap(reference_png):
    payload = base64.b64encode(pathlib.Path(reference_png).read_bytes()).decode()
    with pytest.raises(RequestError, match=r"over the max_reference_bytes cap of 100; "
                                           r"use a smaller image or raise --max-reference-bytes"):
        load_reference(f"data:image/png;base64,{payload}", options=rules(max_bytes=100))


def test_image_of_another_format_is_refused(tmp_path, reference_png):
    from PIL import Image

    Image.open(reference_png).save(tmp_path / "ref.bmp")
    with pytest.raises(RequestError, match=r"no PNG, JPEG or WebP image found in its \d+ bytes"):
        load_reference(str(tmp_path / "ref.bmp"))


@pytest.mark.parametrize(
    "uri, message",
    [
        ("s3:x/outside.png", r"has the scheme 's3' but no '//' after it"),
        ("s3://bucket/a.png::http://127.0.0.1/x", r"contains '::', which chains a second protocol"),
        ("http://10.0.0.1/a.png", r"10.0.0.1 is a private address .*--allow-private-hosts"),
        ("http://169.254.169.254/latest/meta-data/", r"169.254.169.254 is a link-local address"),
        ("http://[fec0::1]/a.png", r"fec0::1 is a private address \(fec0::/10, site-local"),
    ],
)
def test_refused_uris(uri, message):
    with pytest.raises(RequestError, match=message):
        load_reference(uri)


def test_outside_allowed_prefixes_is_refused(tmp_path, reference_png):
    allowed = tmp_path / "refs"
    allowed.mkdir()
    with pytest.raises(RequestError, match=r"is not under --allowed-prefixes .*refs\); rows may only read there"):
        load_reference(reference_png, options=rules(allowed_prefixes=(str(allowed),)))
    shutil.copy(reference_png, allowed / "ok.png")
    assert load_reference(str(allowed / "ok.png"), options=rules(allowed_prefixes=(str(allowed),))).size == (32, 32)


def test_the_runs_own_output_is_refused(tmp_path, reference_png):
    output = tmp_path / "out"
    (output / "videos").mkdir(parents=True)
    shutil.copy(reference_png, output / "videos" / "x.png")
    options = ReferenceRules().source(output=str(output), storage_options={})
    with pytest.raises(RequestError, match=r"is inside this run's own output \(.*out\); "
                                           r"a run never reads its own output"):
        load_reference(str(output / "videos" / "x.png"), options=options)


@pytest.mark.timeout(30)
def test_slow_drip_server_fails_at_the_deadline(reference_png):
    """One byte every 0.05 s never trips a read timeout; the overall deadline still ends the read."""
    with HttpTestServer({"ref.png": reference_png}) as server:
        options = rules(timeout=0.5, allow_private_hosts=(f"127.0.0.1:{server.port}",))
        started = time.monotonic()
        with pytest.raises(RequestError, match=r"took longer than the overall limit of 0.5 s; the server is too slow"):
            load_reference(server.url("drip/0.05/ref.png"), options=options)
        assert time.monotonic() - started < 3
        assert load_reference(server.url("files/ref.png"), options=options).size == (32, 32)


def test_bad_rules_are_refused_at_start():
    with pytest.raises(OptionsError, match=r"allow_private_hosts entry 'a b' is not a CIDR"):
        ReferenceRules(allow_private_hosts=("a b",))
    with pytest.raises(OptionsError, match=r"reference_timeout must be a positive number of seconds \(got 0\)"):
        ReferenceRules(timeout=0)


@pytest.mark.timeout(120)
def test_each_hostile_reference_is_one_failed_record(tmp_path, reference_png):
    """Through the whole queue runner: every refused reference fails its own record, and the run
    reads nothing outside the allowed root."""
    from gen_helpers import read_records, run_queue, write_queue

    root = tmp_path / "refs"
    root.mkdir()
    os.mkfifo(root / "pipe.png")
    shutil.copy(reference_png, root / "big.png")
    cases = {
        "zero": ("/dev/zero", "outside --local-root"),
        "fifo": ("pipe.png", "is a FIFO (named pipe), not a regular file"),
        "outside": (reference_png, "outside --local-root"),
        "big": ("big.png", "over the max_reference_bytes cap of 100"),
        "chained": ("s3://b/k.png::http://127.0.0.1/x", "contains '::'"),
        "private": ("http://10.0.0.1/a.png", "10.0.0.1 is a private address"),
    }
    rows = [dict(id=key, prompt="p", input_reference=uri) for key, (uri, _) in cases.items()]
    summary = run_queue(write_queue(tmp_path / "q.parquet", rows), tmp_path / "out",
                        references=ReferenceRules(local_root=str(root), max_bytes=100))
    assert (summary.completed, summary.failed) == (0, len(cases))
    records = {r["id"]: r for r in read_records(tmp_path / "out")}
    assert sorted(records) == sorted(cases)
    for key, (_, message) in cases.items():
        assert records[key]["status"] == "failed" and message in records[key]["error"], records[key]["error"]
