"""Stored frames back into pixels, for every frame format a shard's metadata can name.

Raw frames are views of the Arrow buffer (no copy). zstd rows are decompressed and images decoded
into a fresh (T, H, W, 3) uint8 array, read-only like the views so that both behave the same.
Images are decoded with Pillow (libjpeg-turbo, libpng, libwebp): measured at 224x224 it decoded
JPEG q90 about 5x faster than PyAV's mjpeg decoder.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from videoproc.preprocess.write import METADATA_KEY


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
    if fmt.frame_format != "raw":
        return decode_images(value, shape)
    if fmt.compression == "zstd":
        return decompress(value, shape)
    return value.reshape(shape)


def decompress(blob: np.ndarray | bytes, shape: list[int]) -> np.ndarray:
    size = int(np.prod(shape))
    raw = pa.decompress(memoryview(blob), decompressed_size=size, codec="zstd", asbytes=False)
    frames = np.frombuffer(raw, np.uint8).reshape(shape)
    frames.flags.writeable = False
    return frames


def decode_images(images: list[bytes], shape: list[int]) -> np.ndarray:
    """T encoded images into one (T, H, W, 3) uint8 array, decoded straight into it."""
    from PIL import Image

    frames = np.empty(shape, np.uint8)
    for index, data in enumerate(images):
        with Image.open(io.BytesIO(data)) as image:
            frames[index] = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
    frames.flags.writeable = False
    return frames
