"""What videoproc is measured against.

naive: what Dynamo's example loader does, one forward decode from frame 0 up to the last wanted
index, converting the wanted frames on the way. It uses the same single-threaded decoder and the
same reused swscale BILINEAR reformatter as videoproc, so the comparison is about which frames get
decoded, nothing else. The conversion is videoproc's own FrameConverter (one thread, the display
rotation applied as videoproc applies it, so both produce the same picture), so
whatever the resize does, both pay the same for it, and exact mode's frames must equal these.

ffmpeg_null: the FFmpeg CLI decoding every frame to the null muxer with one thread, the cost of a
full decode (what a reader that decodes every frame pays at best).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import av
import numpy as np

from videoproc.common.testmedia import ffmpeg_exe
from videoproc.video.resize import FrameConverter, plan_resize


@dataclass(frozen=True, kw_only=True)
class NaiveResult:
    """Frames (T, H, W, 3 uint8, in target order) and how many frames the decoder produced."""

    frames: np.ndarray
    frames_decoded: int
    decode_errors: int


def naive_decode(
    path: str, targets: Sequence[int], *, size: tuple[int, int], threads: Literal["one", "default"] = "one"
) -> NaiveResult:
    """Decode from the start to max(targets), keeping the frames whose output position is wanted.

    Frames are numbered in the order the decoder outputs them (presentation order). Bad packets are
    skipped, as a loader that must not stop on one damaged file would do. threads="default" leaves
    the decoder's threading as PyAV sets it (slice threads, FFmpeg's automatic count), as a user
    who never touches it gets it.
    """
    wanted = set(targets)
    last = max(targets)
    kept: dict[int, np.ndarray] = {}
    width, height = size
    plan = plan_resize(width, height, size=size, mode="stretch")  # stretch ignores the source size
    convert = None
    decoded = 0
    errors = [0]
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        if threads == "one":
            stream.thread_type = "SLICE"
            stream.thread_count = 1
        for index, frame in _frames(container, stream, errors):
            decoded += 1
            if index in wanted:
                if convert is None:  # built at the first frame, which carries the display rotation
                    convert = FrameConverter(plan, rotation=(-int(frame.rotation or 0)) % 360, threads=1)
                kept[index] = convert(frame)
            if index >= last:
                break
    return NaiveResult(frames=_stack(targets, kept, size), frames_decoded=decoded, decode_errors=errors[0])


def _frames(container, stream, errors: list[int]):
    """Decoded frames with their output position; `errors[0]` counts the packets that failed."""
    index = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            errors[0] += 1
            continue
        for frame in frames:
            yield index, frame
            index += 1


def _stack(targets: Sequence[int], kept: dict[int, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    # A target past the real end of the stream (a header that over-counts) stays black: the naive
    # loader has no way to know better, and its timing is what matters here.
    width, height = size
    out = np.zeros((len(targets), height, width, 3), dtype=np.uint8)
    for slot, target in enumerate(targets):
        if target in kept:
            out[slot] = kept[target]
    return out


def ffmpeg_null_command(path: str) -> list[str]:
    return [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-threads", "1", "-i", path,
        "-map", "0:v:0", "-an", "-f", "null", "-",
    ]


def ffmpeg_null(path: str) -> None:
    """Decode the whole video stream with the FFmpeg CLI; raises when FFmpeg fails outright."""
    done = subprocess.run(ffmpeg_null_command(path), capture_output=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"ffmpeg could not decode {path} (exit code {done.returncode}): {tail[0]}")
