"""Stored frames back into pixels, for every frame format a shard's metadata can name.

Raw frames are views of the Arrow buffer (no copy). zstd rows are decompressed and images decoded
into a fresh (T, H, W, 3) uint8 array, read-only like the views so that both behave the same.
JPEG is decoded by simplejpeg (libjpeg-turbo's TurboJPEG API) straight into that array: the same
pixels as Pillow, which uses the same library, without an image object and a copy per frame.
Measured at 224x224 q90 4:4:4 on one core of a shared 2-core machine (load average about 1, so
indicative): 4 741 frames/s against Pillow's 2 551 and 1 825 for PyAV's mjpeg decoder with its
conversion to RGB (bench.frame_formats, "codec candidates"). PNG and WebP use Pillow.
Frames that do not decode, or not to the row's shape, raise ReadError.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import simplejpeg

from videoproc.preprocess.write import METADATA_KEY
from videoproc.read.units import ReadError

_REWRITE = "the shard is damaged or was written by another tool; rewrite it with videoproc preprocess --overwrite"


@dataclass(frozen=True, kw_only=True)
class StoredFormat:
    """How a shard stores `frames`: raw (compression none or zstd), or png / jpeg / webp images."""

    frame_format: str = "raw"
    compression: str = "none"

    @property
    def is_raw(self) -> bool:
        return self.frame_format == "raw" and self.compression == "none"


def stored_format(metadata: dict[bytes, bytes] | None) -> StoredFormat:
    """The frame format named by a shard's metadata; version 1 shards (no such keys) are raw."""
    layout = json.loads((metadata or {}).get(METADATA_KEY, b"{}"))
    return StoredFormat(frame_format=layout.get("frame_format", "raw"),
                        compression=layout.get("compression", "none"))


def decode_frames(value: np.ndarray | list[bytes], shape: list[int], fmt: StoredFormat) -> np.ndarray:
    """One row's (T, H, W, 3) uint8 frames from its stored value: a uint8 view of its binary value
    (raw, zstd), or its list of images."""
    if fmt.frame_format == "jpeg":
        return decode_jpegs(value, shape)
    if fmt.frame_format != "raw":
        return decode_images(value, shape)
    if fmt.compression == "zstd":
        return decompress(value, shape)
    return value.reshape(shape)


def decompress(blob: np.ndarray | bytes, shape: list[int]) -> np.ndarray:
    size = int(np.prod(shape))
    try:
        raw = pa.decompress(memoryview(blob), decompressed_size=size, codec="zstd", asbytes=False)
    except OSError as exc:  # damaged data, or pixels of another size than the shape's
        raise ReadError(f"the row's zstd frames do not decompress to its shape {list(shape)} ({exc}): "
                        f"{_REWRITE}") from None
    frames = np.frombuffer(raw, np.uint8).reshape(shape)
    frames.flags.writeable = False
    return frames


def decode_jpegs(images: list[bytes], shape: list[int]) -> np.ndarray:
    """T JPEG images into one (T, H, W, 3) uint8 array, each decoded in place into its frame."""
    frames = _empty_frames(images, shape)
    for index, data in enumerate(images):
        try:
            image = simplejpeg.decode_jpeg(data, "RGB", buffer=frames[index])
        except ValueError as exc:  # damaged data, or an image larger than its frame
            raise _jpeg_error(data, index, shape, exc) from None
        if error := _size_error(index, image.shape[1], image.shape[0], shape):  # a smaller one fills a prefix
            raise error
    frames.flags.writeable = False
    return frames


def decode_images(images: list[bytes], shape: list[int]) -> np.ndarray:
    """T png or webp images into one (T, H, W, 3) uint8 array, decoded straight into it."""
    frames = _empty_frames(images, shape)
    for index, data in enumerate(images):
        with _open_image(data, index) as image:
            if error := _size_error(index, *image.size, shape):
                raise error
            frames[index] = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
    frames.flags.writeable = False
    return frames


def _empty_frames(images: list[bytes], shape: list[int]) -> np.ndarray:
    """A row's output array from Arrow's memory pool, which hands a freed row's memory to the next
    row: a fresh allocation of this size is mapped anew and faulted in page by page on every row,
    which cost about 10 % of JPEG decoding at 224x224 (4,600 against 5,100 frames/s on one core)."""
    if len(images) != shape[0]:
        raise ReadError(f"the row holds {len(images)} images but its shape says {shape[0]} frames: {_REWRITE}")
    return np.frombuffer(pa.allocate_buffer(int(np.prod(shape))), np.uint8).reshape(shape)


def _size_error(index: int, width: int, height: int, shape: list[int]) -> ReadError | None:
    if (height, width) == (shape[1], shape[2]):
        return None
    return ReadError(f"image {index} is {width}x{height} but the row's shape says {shape[2]}x{shape[1]}: {_REWRITE}")


def _jpeg_error(data: bytes, index: int, shape: list[int], exc: ValueError) -> ReadError:
    """Why a decode failed: the image's size, when its header reads and differs, else damaged data."""
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        height, width = shape[1:3]
    return _size_error(index, width, height, shape) or ReadError(
        f"image {index} is not a valid JPEG ({exc}): {_REWRITE}")


def _open_image(data: bytes, index: int) -> Any:
    """The loaded Pillow image of png or webp `data`."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except OSError as exc:  # not an image (UnidentifiedImageError), truncated or damaged data
        raise ReadError(f"image {index} cannot be decoded ({exc}): {_REWRITE}") from None
    return image
