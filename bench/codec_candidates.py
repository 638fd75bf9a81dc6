"""The JPEG codecs the frame formats could use, measured on the same frames: the choice shown by numbers.

For JPEG q90 at 4:4:4 and 4:2:0, on frames already in memory (bench.frame_formats passes the real
clips' frames at 224x224), one core: encode and decode frames/s, mean bytes per frame and PSNR
against the source frames, for

    Pillow      Image.save / Image.open + np.asarray (libjpeg-turbo behind an image object)
    simplejpeg  encode_jpeg / decode_jpeg(buffer=...) into a preallocated frame (TurboJPEG API);
                what videoproc uses
    PyAV mjpeg  FFmpeg's mjpeg encoder and decoder, each a persistent codec context, with a
                persistent RGB <-> YUV converter; qscale 2, the scale whose bytes come closest to q90

Each rate is the best of two passes of at least `seconds` (0.2 from bench.frame_formats) over the
frames, so the whole takes a few seconds.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
import simplejpeg
from av.video.reformatter import VideoReformatter
from PIL import Image

from bench.peers import psnr

QUALITY = 90
PILLOW_SUBSAMPLING = {"444": 0, "420": 2}
AV_QSCALE = 2  # FFmpeg's mjpeg has no quality 1-100; qscale 2 gives about q90's bytes at 224x224


def rate(work: Callable[[], int], *, seconds: float = 0.3, passes: int = 2) -> float:
    """Best items/s over `passes` passes, each repeating work() (which returns its item count) for
    at least `seconds`."""
    best = 0.0
    for _ in range(passes):
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            count += work()
        best = max(best, count / elapsed)
    return best


class Pillow:
    name = "Pillow"

    def __init__(self, chroma: str, shape: tuple[int, ...]) -> None:
        self.options = {"quality": QUALITY, "subsampling": PILLOW_SUBSAMPLING[chroma]}

    def encode(self, frame: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(frame, "RGB").save(buffer, "JPEG", **self.options)
        return buffer.getvalue()

    def decode(self, data: bytes, out: np.ndarray) -> None:
        with Image.open(io.BytesIO(data)) as image:
            out[...] = np.asarray(image)


class SimpleJpeg:
    name = "simplejpeg"

    def __init__(self, chroma: str, shape: tuple[int, ...]) -> None:
        self.chroma = chroma

    def encode(self, frame: np.ndarray) -> bytes:
        return simplejpeg.encode_jpeg(frame, quality=QUALITY, colorspace="RGB", colorsubsampling=self.chroma)

    def decode(self, data: bytes, out: np.ndarray) -> None:
        simplejpeg.decode_jpeg(data, "RGB", buffer=out)


class PyAVMjpeg:
    name = "PyAV mjpeg"

    def __init__(self, chroma: str, shape: tuple[int, ...]) -> None:
        self.pix_fmt = f"yuvj{chroma}p"
        self.encoder = av.CodecContext.create("mjpeg", "w")
        self.encoder.width, self.encoder.height = shape[1], shape[0]
        self.encoder.pix_fmt, self.encoder.time_base = self.pix_fmt, Fraction(1, 30)
        self.encoder.qmin = self.encoder.qmax = AV_QSCALE
        self.encoder.open()
        self.decoder = av.CodecContext.create("mjpeg", "r")
        self.to_yuv, self.to_rgb = VideoReformatter(), VideoReformatter()

    def encode(self, frame: np.ndarray) -> bytes:
        yuv = self.to_yuv.reformat(av.VideoFrame.from_ndarray(frame, format="rgb24"), format=self.pix_fmt)
        return b"".join(bytes(packet) for packet in self.encoder.encode(yuv))

    def decode(self, data: bytes, out: np.ndarray) -> None:
        (frame,) = self.decoder.decode(av.Packet(data))
        out[...] = self.to_rgb.reformat(frame, format="rgb24").to_ndarray()


CODECS = (Pillow, SimpleJpeg, PyAVMjpeg)


def measure(frames: np.ndarray, *, seconds: float = 0.3) -> list[dict]:
    """One record per chroma and codec: bytes_per_frame, psnr_db, encode_fps, decode_fps (one core)."""
    results = []
    for chroma in PILLOW_SUBSAMPLING:
        for make in CODECS:
            codec = make(chroma, frames.shape[1:])
            results.append({"chroma": chroma, "codec": codec.name, **_measure_one(codec, frames, seconds)})
    return results


def _measure_one(codec, frames: np.ndarray, seconds: float) -> dict:
    images = [codec.encode(frame) for frame in frames]
    decoded = np.empty_like(frames)
    _decode_all(codec, images, decoded)
    return {"bytes_per_frame": round(sum(map(len, images)) / len(images)),
            "psnr_db": round(psnr(decoded, frames), 2),
            "encode_fps": round(rate(lambda: _encode_all(codec, frames), seconds=seconds)),
            "decode_fps": round(rate(lambda: _decode_all(codec, images, decoded), seconds=seconds))}


def _encode_all(codec, frames: np.ndarray) -> int:
    for frame in frames:
        codec.encode(frame)
    return len(frames)


def _decode_all(codec, images: list[bytes], out: np.ndarray) -> int:
    for image, frame in zip(images, out, strict=True):
        codec.decode(image, frame)
    return len(images)
