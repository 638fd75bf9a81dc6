"""Small synthetic clips made with the FFmpeg CLI that ships with imageio-ffmpeg.

Each clip is described by the exact command that makes it, so the media of the sample manifest, the
tests and the benchmark can be rebuilt and audited. The FFmpeg CLI here is also the independent
reference decoder that tests compare frames against.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True, kw_only=True)
class Clip:
    """A clip and the FFmpeg arguments (after the executable) that produce it."""

    name: str
    args: tuple[str, ...]
    base: Clip | None = None  # made first; "{base}" in args stands for its path

    def command(self, path: str, base_path: str = "") -> list[str]:
        args = [a.replace("{base}", base_path) for a in self.args]
        return [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args, path]

    def make(self, folder: str) -> str:
        path = os.path.join(folder, self.name)
        if not os.path.exists(path):
            base_path = self.base.make(folder) if self.base else ""
            os.makedirs(folder, exist_ok=True)
            tmp = path + ".partial" + os.path.splitext(path)[1]
            subprocess.run(self.command(tmp, base_path), check=True)
            os.replace(tmp, path)
        return path


def _x264(seconds: float, size: str, rate: int, gop: int, *extra: str, source: str = "testsrc2") -> tuple[str, ...]:
    return (
        "-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", *extra,
    )


SAMPLE_CLIPS = (
    Clip(name="testsrc_h264_3s.mp4", args=_x264(3, "320x240", 30, 30)),
    Clip(
        name="rotated_90.mp4",
        # The display matrix is added by a stream copy, so the coded picture stays 320x240.
        args=("-display_rotation", "90", "-i", "{base}", "-c", "copy"),
        base=Clip(name="upright_320x240.mp4", args=_x264(1, "320x240", 25, 25)),
    ),
    Clip(
        name="vfr.mkv",
        # 20 frames at 10 fps then 20 frames at 40 fps: index = t * average rate is wrong here.
        args=(
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=40:duration=1",
            "-vf", "setpts='if(lt(N,20),N*4,80+(N-20))/(40*TB)'", "-fps_mode", "vfr",
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "10",
        ),
    ),
)


def _colour(size: str, pix_fmt: str, *tags: str) -> tuple[str, ...]:
    return (
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=5:duration=1",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt, *tags,
    )


_BT601_TV = ("-colorspace", "smpte170m", "-color_range", "tv")
_BT601_PC = ("-colorspace", "smpte170m", "-color_range", "pc")
# The encoder takes primaries and transfer from the frames, so they are set by a filter.
_BT709_TV = ("-vf", "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv")
_BT709_PC = ("-colorspace", "bt709", "-color_range", "pc")

# One picture under different colour metadata, at two geometries that real clips also have (1280x720
# like the WebM clips, 176x144 like carphone): a worker that keeps conversion state across videos of
# one geometry meets every pair of them. Untagged clips carry no matrix, range or chroma siting at
# all, as many phone and screen-capture encodes do.
COLOUR_CLIPS = (
    Clip(name="colour_720_untagged.mp4", args=_colour("1280x720", "yuv420p")),
    Clip(name="colour_720_bt601_tv.mp4", args=_colour("1280x720", "yuv420p", *_BT601_TV)),
    Clip(name="colour_720_bt709_pc.mp4", args=_colour("1280x720", "yuv420p", *_BT709_PC)),
    Clip(name="colour_qcif_untagged.mp4", args=_colour("176x144", "yuv420p")),
    Clip(name="colour_qcif_bt601_tv.mp4", args=_colour("176x144", "yuv420p", *_BT601_TV)),
    Clip(name="colour_qcif_bt601_pc.mp4", args=_colour("176x144", "yuv420p", *_BT601_PC)),
    Clip(name="colour_qcif_bt709_tv.mp4", args=_colour("176x144", "yuv420p", *_BT709_TV)),
    Clip(name="colour_qcif_bt709_pc.mp4", args=_colour("176x144", "yuv420p", *_BT709_PC)),
    Clip(name="colour_qcif_untagged_centre.mp4",
         args=_colour("176x144", "yuv420p", "-chroma_sample_location", "center")),
    Clip(name="colour_qcif_untagged_444.mp4", args=_colour("176x144", "yuv444p")),
    Clip(name="colour_qcif_bt709_tv_444.mp4", args=_colour("176x144", "yuv444p", *_BT709_TV)),
    Clip(name="colour_qcif_untagged_10bit.mp4", args=_colour("176x144", "yuv420p10le")),
    Clip(name="colour_qcif_bt709_pc_10bit.mp4", args=_colour("176x144", "yuv420p10le", *_BT709_PC)),
)
