"""MP4 writing: colour survives, the stream is tagged, the same frames give the same bytes.

Decoding goes through the FFmpeg CLI bundled with imageio-ffmpeg, independently of the writer:
    ffmpeg -v error -i VIDEO.mp4 -f rawvideo -pix_fmt rgb24 -
"""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from videoproc.common.storage import locate
from videoproc.generate.encode import encode_mp4, partial_name, write_video

# 75% SMPTE-style bars plus full primaries, black, white and two mixed colours.
BARS = np.array([
    [191, 191, 191], [191, 191, 0], [0, 191, 191], [0, 191, 0], [191, 0, 191], [191, 0, 0], [0, 0, 191],
    [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [128, 64, 200], [30, 160, 90],
], dtype=np.uint8)
BAR_WIDTH = 16


def bars_video(height: int = 64, frames: int = 3) -> np.ndarray:
    row = np.repeat(BARS, BAR_WIDTH, axis=0)
    return np.repeat(row[None, None], height, axis=1).repeat(frames, axis=0)


def decode_with_ffmpeg_cli(path: str, width: int, height: int) -> np.ndarray:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


@pytest.mark.parametrize("height", [64, 720])  # below and at HD, where untagged players switch matrices
def test_colour_bars_survive_encode_and_decode(tmp_path, height):
    video = bars_video(height=height, frames=2)
    path = str(tmp_path / "bars.mp4")
    encode_mp4(video, path, fps=24)
    decoded = decode_with_ffmpeg_cli(path, video.shape[2], height)
    assert decoded.shape == video.shape
    centres = decoded[:, height // 2, BAR_WIDTH // 2::BAR_WIDTH].astype(int)
    assert np.abs(centres - BARS.astype(int)).max() <= 4


def test_colour_bars_survive_pyav_decoding(tmp_path):
    import av

    path = str(tmp_path / "bars.mp4")
    encode_mp4(bars_video(), path, fps=24)
    with av.open(path) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "yuv420p"
        rgb = frame.to_ndarray(format="rgb24")
    assert np.abs(rgb[32, BAR_WIDTH // 2::BAR_WIDTH].astype(int) - BARS.astype(int)).max() <= 4


def test_stream_is_h264_yuv420p_tagged_bt709(tmp_path):
    path = str(tmp_path / "bars.mp4")
    encode_mp4(bars_video(), path, fps=16, comment="demo")
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", path],
                          capture_output=True, text=True).stderr
    assert "Video: h264" in info and "yuv420p(tv, bt709" in info and "16 fps" in info
    assert "comment         : demo" in info


def test_same_frames_give_identical_bytes(tmp_path):
    video = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    encode_mp4(video, str(first), fps=24)
    encode_mp4(video, str(second), fps=24)
    assert first.read_bytes() == second.read_bytes()


def test_odd_sides_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"frames of 33x32 cannot be yuv420p: width and height must be even"):
        encode_mp4(np.zeros((2, 32, 33, 3), np.uint8), str(tmp_path / "x.mp4"), fps=24)


@pytest.mark.parametrize("frames", [np.zeros((2, 32, 32), np.uint8), np.zeros((2, 32, 32, 3), np.float32),
                                    np.zeros((0, 32, 32, 3), np.uint8)])
def test_bad_frame_arrays_are_refused(tmp_path, frames):
    with pytest.raises(ValueError, match=r"frames must be a uint8 array \(frames, height, width, 3\)"):
        encode_mp4(frames, str(tmp_path / "x.mp4"), fps=24)


def test_write_video_publishes_atomically_and_hashes(tmp_path):
    import base64
    import hashlib

    dest = locate(str(tmp_path / "out" / "videos" / "abc.mp4"))
    video = write_video(bars_video(frames=2), dest, fps=24, want_b64=True)
    data = (tmp_path / "out" / "videos" / "abc.mp4").read_bytes()
    assert video.sha256 == hashlib.sha256(data).hexdigest() and video.bytes == len(data)
    assert base64.b64decode(video.b64) == data
    assert sorted(p.name for p in (tmp_path / "out" / "videos").iterdir()) == ["abc.mp4"]  # no partial left
    assert partial_name("abc.mp4") == ".abc.partial.mp4"


def test_write_video_to_object_storage(tmp_path):
    import fsspec

    dest = locate("memory://gen-test/videos/abc.mp4")
    video = write_video(bars_video(frames=2), dest, fps=24, want_b64=False)
    assert video.b64 is None and video.url == "memory://gen-test/videos/abc.mp4"
    assert fsspec.filesystem("memory").cat_file("/gen-test/videos/abc.mp4")[:12].endswith(b"ftypisom")
