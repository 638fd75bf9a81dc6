"""Shared fixtures: the real clips shipped in the repository, synthetic clips made with the FFmpeg
CLI (each from a recorded command), and the FFmpeg CLI itself as an independent reference decoder."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from videoproc.common.testmedia import SAMPLE_CLIPS, ffmpeg_exe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_DIR = os.path.join(ROOT, "manifests", "media", "real")
GENERATED_DIR = os.path.join(ROOT, "manifests", "media", "generated")
REAL_CLIPS = sorted(f for f in os.listdir(REAL_DIR) if not f.endswith(".md"))


@pytest.fixture(scope="session")
def real_dir() -> str:
    return REAL_DIR


@pytest.fixture(scope="session")
def sample_clips() -> dict[str, str]:
    """The generated clips of the sample manifest, by name."""
    return {clip.name: clip.make(GENERATED_DIR) for clip in SAMPLE_CLIPS}


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory):
    """Make a clip from FFmpeg arguments once per session: clip_factory(Clip(name=..., args=...))."""
    folder = str(tmp_path_factory.mktemp("clips"))
    return lambda clip: clip.make(folder)


def ffmpeg_frames(path: str, *, vf: str | None = None, pix_fmt: str = "rgb24", stream: int = 0) -> np.ndarray:
    """Every frame the FFmpeg CLI decodes from the video stream, in presentation order, as
    (N, H, W, 3) uint8. `-fps_mode passthrough` keeps one output frame per decoded frame."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", path, "-map", f"0:v:{stream}"]
    if vf:
        cmd += ["-vf", vf]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    width, height = _output_size(path, vf)
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def _output_size(path: str, vf: str | None) -> tuple[int, int]:
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", path, "-map", "0:v:0", "-frames:v", "1"]
    if vf:
        cmd += ["-vf", vf]
    cmd += ["-f", "image2pipe", "-vcodec", "ppm", "-"]
    head = subprocess.run(cmd, capture_output=True, check=True).stdout[:64].split()
    return int(head[1]), int(head[2])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


from tests.runs import real_run  # noqa: E402,F401  (session fixture)
from tests.servers.fixtures import ceph_s3, moto_s3  # noqa: E402,F401  (session fixtures)
from tests.servers.ray_cluster import ray_cluster  # noqa: E402,F401  (session fixture)
