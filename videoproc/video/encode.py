"""A result's frames as stored bytes: one image per frame (png, jpeg, webp), or zstd over raw pixels.

Encoding runs in the worker that made the frames, so the parent's shard writer only copies bytes.
Encoders were chosen by measurement (bench.frame_formats, its "codec candidates" table), at 224x224
on one core of a shared 2-core machine (load average about 1, so indicative): JPEG q90 4:4:4 with
simplejpeg (libjpeg-turbo's TurboJPEG API) encoded 4 635 frames/s, Pillow (the same libjpeg-turbo
behind an image object and a file buffer) 3 305, PyAV's mjpeg encoder 1 690; at 1280x720
simplejpeg 238 against Pillow's 174. simplejpeg's bytes are not Pillow's: below quality 96 TurboJPEG
uses the fast integer DCT (about 0.1-0.2 dB, 0.2 % more bytes). PNG uses zlib level 1 (level 6
encodes about a third as fast for 12 % fewer bytes); WebP uses Pillow's default method 4. zstd is
pyarrow's codec, so raw+zstd needs no extra package.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import simplejpeg
from PIL import Image

from videoproc.video.options import FrameFormat

_PIL_NAMES = {"png": "PNG", "webp": "WEBP"}


def encode_frames(frames: np.ndarray, store: FrameFormat, *, rows: int = 1) -> tuple[bytes, ...]:
    """The stored values of (N, H, W, 3) uint8 `frames`: one image per frame for an image format;
    for raw+zstd one compressed blob per row, the frames split evenly into `rows` rows (clips).
    Not called for plain raw, whose pixels are stored as they are."""
    if store.format == "raw":
        return tuple(compress(chunk, level=store.zstd_level) for chunk in np.split(frames, rows))
    if store.format == "jpeg":
        return tuple(encode_jpeg(frame, quality=store.quality, chroma=store.chroma) for frame in frames)
    options = _save_options(store)
    return tuple(encode_image(frame, _PIL_NAMES[store.format], options) for frame in frames)


def encode_jpeg(frame: np.ndarray, *, quality: int, chroma: str) -> bytes:
    """A baseline JFIF image of one (H, W, 3) RGB frame; chroma is "444" or "420"."""
    # TurboJPEG reads whole rows at a fixed stride: a strided view must be made contiguous first.
    return simplejpeg.encode_jpeg(np.ascontiguousarray(frame), quality=quality, colorspace="RGB",
                                  colorsubsampling=chroma)


def encode_image(frame: np.ndarray, name: str, options: dict) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame, "RGB").save(buffer, name, **options)
    return buffer.getvalue()


def compress(pixels: np.ndarray, *, level: int) -> bytes:
    """zstd (a standard frame, readable by any zstd tool) of the pixels' C-order bytes."""
    return pa.Codec("zstd", compression_level=level).compress(np.ascontiguousarray(pixels).data, asbytes=True)


def _save_options(store: FrameFormat) -> dict:
    if store.format == "png":
        return {"compress_level": 1}
    return {"quality": store.quality, "method": 4}
