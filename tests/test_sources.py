"""The source layer's dispatch and local-path rules: schemes refused, --local-root confinement
(no '..' or symlink escapes), file:// URIs, and byte counting."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import REAL_DIR
from videoproc.common.errors import SourceError
from videoproc.source import open_uri
from videoproc.source.options import SourceOptions
from videoproc.video.options import VideoOptions
from videoproc.video.process import VideoTask, process_video

CLIP = os.path.join(REAL_DIR, "h265_video.mp4")


def read_all(uri: str, options: SourceOptions | None = None) -> bytes:
    with open_uri(uri, options=options or SourceOptions()) as reader:
        return reader.read()


@pytest.mark.parametrize("uri", ["ftp://example.invalid/a.mp4", "sftp://host/a.mp4", "webhdfs://x/y.mp4"])
def test_schemes_that_could_reach_any_host_are_refused(uri):
    with pytest.raises(SourceError, match=r"URI scheme '\w+' is not supported .*object store: .*s3"):
        read_all(uri)


def test_an_unsupported_scheme_is_a_failed_row():
    result = process_video(VideoTask(row=0, id="x", uri="ftp://example.invalid/a.mp4"),
                           video=VideoOptions(), source=SourceOptions(), threads=1)
    assert result.status == "failed" and "URI scheme 'ftp' is not supported" in result.error


def test_file_uri_and_plain_path_read_the_same_bytes():
    assert read_all("file://" + CLIP) == read_all(CLIP)


def test_file_uri_with_a_remote_host_is_refused():
    with pytest.raises(SourceError, match=r"file:// URI names a remote host 'server'; use file:///path"):
        read_all("file://server/share/a.mp4")


@pytest.fixture
def rooted(tmp_path):
    root = tmp_path / "root"
    (root / "videos").mkdir(parents=True)
    shutil.copy(CLIP, root / "videos" / "a.mp4")
    outside = tmp_path / "outside.mp4"
    shutil.copy(CLIP, outside)
    os.symlink(outside, root / "videos" / "link.mp4")
    return root, SourceOptions(local_root=str(root))


def test_local_root_allows_paths_inside_it(rooted):
    root, options = rooted
    assert read_all("videos/a.mp4", options) == read_all(CLIP)
    assert read_all(str(root / "videos" / "a.mp4"), options) == read_all(CLIP)


@pytest.mark.parametrize("uri", ["../outside.mp4", "videos/../../outside.mp4", "videos/link.mp4"])
def test_local_root_refuses_dotdot_and_symlink_escapes(rooted, uri):
    _, options = rooted
    with pytest.raises(SourceError, match=r"outside --local-root .*no '\.\.' or symlink escapes"):
        read_all(uri, options)


def test_local_root_refuses_absolute_paths_elsewhere(rooted, tmp_path):
    _, options = rooted
    with pytest.raises(SourceError, match=r"outside --local-root"):
        read_all(str(tmp_path / "outside.mp4"), options)


def test_bytes_read_counts_what_the_reader_returned():
    with open_uri(CLIP, options=SourceOptions()) as reader:
        reader.read(1000)
        reader.seek(0)
        reader.read(500)
        assert reader.bytes_read == 1500
