"""The decoders users pick instead of videoproc, run on the same files and the same indices.

decord (0.6.0, the `bench` extra): `VideoReader(path, width=224, height=224, num_threads=N)` then
`get_batch(indices)`. decord resizes inside its own FFmpeg filter graph (a `scale` filter, swscale's
default bicubic), so its time is decode + resize, as a user gets it; videoproc's is decode + its
BILINEAR swscale resize. N=1 is one thread; N=0 is decord's default (FFmpeg picks the count).

Plain PyAV is bench.baselines.naive_decode, what a plain PyAV loader does (decode from frame 0 up
to the last index): with one thread it is the report's naive column (`pyav`), and at PyAV's own
default threading (slice threads, FFmpeg's automatic count: a gain for VP9 tiles and multi-slice
streams, none for one-slice-per-frame H.264) it is the `pyav-auto` peer.

torchcodec is left out: the only wheel there is for this Python (0.17.0) is linked against CUDA 13
(`libnvrtc.so.13`) and loads no library beside the CPU build of torch the tests pin, and it needs
FFmpeg's shared libraries installed system-wide, which this machine kind does not have.

The frames are compared where the decoders agree on the frame count (and so on what an index
means): at full resolution, since decord's scaler differs from videoproc's by design.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

INSTALL_HINT = "pip install 'videoproc[bench]'"

# name -> (module, threads): one thread each and each decoder's default threading (0). Plain PyAV with
# one thread is the naive column, measured for every file anyway.
PEERS: dict[str, tuple[str, int]] = {"decord-1t": ("decord", 1), "decord-auto": ("decord", 0), "pyav-auto": ("av", 0)}


@dataclass(frozen=True, kw_only=True)
class PeerFrames:
    """What a peer returned: frames (T, H, W, 3 uint8, in index order) and its own frame count."""

    frames: np.ndarray
    num_frames: int


def missing() -> dict[str, str]:
    """Peer module -> why it is not measured, for every peer whose module is not installed."""
    modules = sorted({module for module, _ in PEERS.values()})
    return {m: f"{m} not installed: {INSTALL_HINT}" for m in modules if importlib.util.find_spec(m) is None}


def methods(path: str, indices: Sequence[int], *, size: tuple[int, int]) -> dict[str, Callable[[], PeerFrames]]:
    """The timed calls of every installed peer on one file."""
    absent = missing()
    calls = {
        "decord": lambda threads: decord_batch(path, indices, size=size, threads=threads),
        "av": lambda _threads: _pyav_default(path, indices, size=size),
    }
    return {
        name: (lambda module=module, threads=threads: calls[module](threads))
        for name, (module, threads) in PEERS.items() if module not in absent
    }


def _pyav_default(path: str, indices: Sequence[int], *, size: tuple[int, int]) -> PeerFrames:
    from bench.baselines import naive_decode

    result = naive_decode(path, indices, size=size, threads="default")
    return PeerFrames(frames=result.frames, num_frames=result.frames_decoded)


def decord_batch(path: str, indices: Sequence[int], *, size: tuple[int, int] | None, threads: int) -> PeerFrames:
    """decord's frames at `indices`, resized by decord to `size` (None: the stored size)."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)  # its FFmpeg log repeats every concealed error per call
    width, height = size or (-1, -1)
    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), width=width, height=height, num_threads=threads)
    except decord.DECORDError as exc:
        raise RuntimeError(f"decord cannot open the file: {_reason(str(exc))}") from None
    count = len(reader)
    if max(indices) >= count:
        raise IndexError(f"decord counts {count} frames; index {max(indices)} is past its end")
    try:
        frames = reader.get_batch(list(indices)).asnumpy()
    except decord.DECORDError as exc:
        raise RuntimeError(f"decord cannot decode the frames: {_reason(str(exc))}") from None
    return PeerFrames(frames=frames, num_frames=count)


def _reason(message: str) -> str:
    """decord's message without its timestamp, source location, check expression and file path."""
    text = message.strip().splitlines()[0]
    text = re.sub(r"^.*Check failed: .*? \(-?\d+ vs\. -?\d+\)\s*", "", text)
    text = text.split(" ERROR ", 1)[-1] if " ERROR " in text else text.rsplit("] ", 1)[-1]
    return text.strip().removeprefix("ERROR ")


def psnr(a: np.ndarray, b: np.ndarray) -> float | None:
    """PSNR in dB (inf: identical); None when the shapes differ."""
    if a.shape != b.shape:
        return None
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> int | None:
    if a.shape != b.shape:
        return None
    return int(np.max(np.abs(a.astype(np.int16) - b.astype(np.int16))))
