"""Frames -> MP4 (H.264, yuv420p, BT.709 tagged), written to `*.partial.mp4` and then published.

Colour: the RGB -> YUV conversion uses the BT.709 matrix with limited range and the stream is tagged
with the same, so players and decoders convert back with the matrix that was used. Untagged yuv420p
leaves the choice to the player, which picks BT.601 for small and BT.709 for HD videos; that mismatch
is the classic colour shift in generated videos.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from videoproc.common.storage import Location, put_file_atomic

CRF = 17  # x264 quality: visually lossless, so the test colour bars come back within a few levels
_COLOUR = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]


@dataclass(frozen=True, kw_only=True)
class PublishedVideo:
    url: str
    sha256: str
    bytes: int
    b64: str | None


def encode_mp4(frames: Any, path: str, *, fps: int, comment: str | None = None) -> None:
    """Encode uint8 frames (T, H, W, 3) to `path`, which must end in `.mp4`; sides must be even."""
    import imageio_ffmpeg
    import numpy as np

    count, height, width, channels = _check_frames(frames)
    params = ["-crf", str(CRF),
              "-vf", "scale=out_color_matrix=bt709:out_range=tv,"
                     "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
              *_COLOUR,
              # bitexact drops the muxer's version string: the same frames give the same bytes.
              "-fflags", "+bitexact", "-movflags", "+faststart"]
    if comment:
        params += ["-metadata", f"comment={comment}"]
    writer = imageio_ffmpeg.write_frames(path, (width, height), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                                         pix_fmt_out="yuv420p", macro_block_size=1, ffmpeg_log_level="error",
                                         output_params=params)
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise OSError(f"ffmpeg wrote no file at {path!r} for {count} frames of {width}x{height}")


def write_video(frames: Any, dest: Location, *, fps: int, want_b64: bool, comment: str | None = None) -> PublishedVideo:
    """Encode to a `*.partial.mp4` beside `dest` (or in a temp folder for object storage), hash it,
    then publish it at `dest` in one rename or upload."""
    folder = os.path.dirname(dest.path) if dest.is_local else tempfile.mkdtemp(prefix="videoproc-gen-")
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, partial_name(os.path.basename(dest.path)))
    try:
        encode_mp4(frames, partial, fps=fps, comment=comment)
        with open(partial, "rb") as f:
            data = f.read()
        put_file_atomic(partial, dest)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
        if not dest.is_local:
            os.rmdir(folder)
    return PublishedVideo(url=dest.url, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                          b64=base64.b64encode(data).decode() if want_b64 else None)


def partial_name(final_name: str) -> str:
    """Hidden, and ending in `.mp4`: ffmpeg picks the container from the ending."""
    stem = final_name[:-4] if final_name.endswith(".mp4") else final_name
    return f".{stem}.partial.mp4"


def _check_frames(frames: Any) -> tuple[int, int, int, int]:
    shape = getattr(frames, "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3 or str(frames.dtype) != "uint8" or shape[0] < 1:
        raise ValueError(f"frames must be a uint8 array (frames, height, width, 3) with at least one frame "
                         f"(got shape {shape}, dtype {getattr(frames, 'dtype', None)})")
    if shape[1] % 2 or shape[2] % 2:
        raise ValueError(f"frames of {shape[2]}x{shape[1]} cannot be yuv420p: width and height must be even; "
                         "crop or resize by one pixel")
    return tuple(shape)
