"""Helpers shared by the preprocess tests: test-only clips (each with the FFmpeg command that makes
it), a direct decode of chosen frames through the library, the FFmpeg CLI as a reference decoder
with input options, and small manifest and output readers."""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Sequence
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import GENERATED_DIR, REAL_DIR
from videoproc.common.testmedia import Clip, _x264, ffmpeg_exe
from videoproc.video.decode import DecodedFrames, FrameDecoder
from videoproc.video.options import ResizeMode, SeekMode
from videoproc.video.packets import KEEP_PACKETS_BYTES
from videoproc.video.probe import VideoProbe, probe_keeping_packets
from videoproc.video.resize import FrameConverter, displayed_size, plan_resize

# 250 frames at 25 fps, a keyframe every 100 frames and up to 3 B-frames: reaching frame 199 from
# frame 0 costs 200 decoded frames, from the keyframe at 100 only 100.
LONG_GOP = Clip(name="long_gop_10s.mp4", args=_x264(10, "320x240", 25, 100, "-bf", "3"))

# HEVC with open GOPs: after each CRA keyframe (every 25 frames) come leading frames that are shown
# before it but decoded after it, so a seek to the CRA cannot produce them.
HEVC_OPEN_GOP = Clip(
    name="hevc_open_gop.mp4",
    args=(
        "-f", "lavfi", "-i", "testsrc2=size=192x108:rate=25:duration=4",
        "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-x265-params", "log-level=error:keyint=25:min-keyint=25:scenecut=0:open-gop=1:bframes=4:b-adapt=0",
    ),
)

# A container with an audio stream and no video stream.
AUDIO_ONLY = Clip(
    name="audio_only.m4a", args=("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac")
)



def named_clip(name: str, clip_factory=None) -> str:
    """The path of "real/<file>", "generated/<file>", or (made by clip_factory) "long_gop" or
    "hevc_open_gop": one spelling for test parameters over all the clips."""
    if name in ("long_gop", "hevc_open_gop"):
        return clip_factory(LONG_GOP if name == "long_gop" else HEVC_OPEN_GOP)
    folder, file = name.split("/")
    return os.path.join(REAL_DIR if folder == "real" else GENERATED_DIR, file)


def decode_file(
    path: str,
    targets: Sequence[int] | None = None,
    *,
    size: tuple[int, int] | None = None,
    mode: ResizeMode = "stretch",
    autorotate: bool = True,
    strict: bool = False,
    seek_mode: SeekMode = "exact",
    keyframes: Sequence[int] | None = None,
    threads: int = 1,
    keep_packets: bool = False,
) -> tuple[VideoProbe, DecodedFrames]:
    """Decode `targets` (default: every frame) of the first video stream, with one decoder thread
    unless told. `keyframes` replaces the probe's keyframe list, to imitate a file whose index lies.
    `keep_packets` decodes the packets the probe read instead of reading the file again."""
    with av.open(path, metadata_errors="ignore") as container:
        info, packets = probe_keeping_packets(container, max_bytes=KEEP_PACKETS_BYTES if keep_packets else 0)
        if keyframes is not None:
            import dataclasses

            info = dataclasses.replace(info, keyframes=tuple(keyframes))

        def converter(rotation: int) -> FrameConverter:
            shown = displayed_size(info.width, info.height, rotation)
            return FrameConverter(plan_resize(*shown, size=size, mode=mode), rotation=rotation)

        decoder = FrameDecoder(
            container, info, strict=strict, autorotate=autorotate, threads=threads, make_converter=converter,
            packets=packets,
        )
        wanted = list(range(info.num_frames)) if targets is None else list(targets)
        return info, decoder.decode(wanted, seek_mode=seek_mode)


def cli_frames(path: str, *, input_args: Sequence[str] = (), vf: str | None = None) -> np.ndarray:
    """Every frame the FFmpeg CLI decodes from the first video stream, as (N, H, W, 3) uint8 RGB.

    `input_args` go before `-i` (e.g. `-noautorotate`, `-threads 1`). Frames come as PPM images, so
    each carries its own size and no second probe is needed."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *input_args, "-i", path, "-map", "0:v:0"]
    if vf:
        cmd += ["-vf", vf]
    cmd += ["-fps_mode", "passthrough", "-f", "image2pipe", "-vcodec", "ppm", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.stack(list(_ppm_frames(raw)))


def _ppm_frames(raw: bytes):
    pos = 0
    while pos < len(raw):
        fields: list[bytes] = []
        while len(fields) < 4:  # magic, width, height, maxval, separated by single whitespace
            end = pos
            while raw[end : end + 1] not in (b" ", b"\n", b"\t", b"\r"):
                end += 1
            fields.append(raw[pos:end])
            pos = end + 1
        width, height = int(fields[1]), int(fields[2])
        size = width * height * 3
        yield np.frombuffer(raw, np.uint8, count=size, offset=pos).reshape(height, width, 3)
        pos += size


def write_manifest(path: str, columns: dict[str, list[Any]] | pa.Table) -> str:
    table = columns if isinstance(columns, pa.Table) else pa.table(columns)
    pq.write_table(table, path)
    return path


def read_output(output: str) -> list[dict[str, Any]]:
    """Every output row of a run, shards in order."""
    files = sorted(glob.glob(os.path.join(output, "data", "part-*.parquet")))
    rows: list[dict[str, Any]] = []
    for path in files:
        rows += pq.read_table(path).to_pylist()
    return rows


def frames_of(row: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(row["frames"], dtype=row["dtype"]).reshape(row["shape"])
