"""Reading `input_reference` images: local paths, file:// and data: URIs, and the failures."""

from __future__ import annotations

import base64
import pathlib

import pytest

from videoproc.generate.reference import load_reference
from videoproc.generate.requests import RequestError


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
    with pytest.raises(RequestError, match=r"is not a readable image \(no PNG, JPEG or WebP image found in its 5 bytes\); point it at a PNG, JPEG or WebP file"):
        load_reference(str(tmp_path / "x.png"))


def test_unsupported_scheme():
    with pytest.raises(RequestError, match=r"URI scheme 'ftp' is not supported .* use a local path, file:///PATH, data:, http\(s\)://"):
        load_reference("ftp://example.com/a.png")
