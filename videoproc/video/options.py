"""How each video becomes a frame tensor: the options of the video stage, checked before any work.

Option names follow Dynamo's decoder config (fps, num_frames, max_frames, strict, max_alloc).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from videoproc.common.checks import check_choice, check_positive_float, check_positive_int
from videoproc.common.errors import OptionsError
from videoproc.common.memory import DEFAULT_MAX_ALLOC

ResizeMode = Literal["stretch", "crop", "pad"]
SeekMode = Literal["exact", "keyframe"]

DEFAULT_NUM_FRAMES = 16
MAX_SIDE = 16384


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """How each video becomes a frame tensor. Every field changes the output rows.

    num_frames: frames spread uniformly over the video (default 16 when fps is not set).
    fps: sample times per second of video; max_frames caps how many of them are kept.
    size: (width, height) in pixels, or None to keep the displayed source size.
    max_alloc: bytes a row may allocate (output tensor + one native-size RGB frame).
    """

    num_frames: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    size: tuple[int, int] | None = (224, 224)
    resize_mode: ResizeMode = "stretch"
    autorotate: bool = True
    strict: bool = False
    max_alloc: int = DEFAULT_MAX_ALLOC
    seek_mode: SeekMode = "exact"

    def __post_init__(self) -> None:
        _check_sampling(self.num_frames, self.fps, self.max_frames)
        if self.num_frames is None and self.fps is None:
            object.__setattr__(self, "num_frames", DEFAULT_NUM_FRAMES)
        check_choice("resize_mode", self.resize_mode, ResizeMode)
        check_choice("seek_mode", self.seek_mode, SeekMode)
        if self.size is not None:
            _check_size(self.size)
        check_positive_int("max_alloc", self.max_alloc, hint="e.g. --max-alloc 512MiB")


def parse_size(text: str) -> tuple[int, int] | None:
    """'224x224' -> (224, 224); 'original' -> None (keep the displayed source size)."""
    value = text.strip().lower()
    if value == "original":
        return None
    match = re.fullmatch(r"(\d+)\s*[x×]\s*(\d+)", value)
    if not match:
        raise OptionsError(
            f"size must be WIDTHxHEIGHT in pixels or 'original' (got {text!r}); e.g. --size 224x224"
        )
    size = (int(match[1]), int(match[2]))
    _check_size(size)
    return size


def _check_sampling(num_frames: int | None, fps: float | None, max_frames: int | None) -> None:
    if fps is not None and num_frames is not None:
        raise OptionsError(
            f"fps and num_frames cannot be specified at the same time (got fps={fps}, "
            f"num_frames={num_frames}); choose one"
        )
    if max_frames is not None and num_frames is not None:
        raise OptionsError(
            f"max_frames and num_frames cannot be specified at the same time (got max_frames="
            f"{max_frames}, num_frames={num_frames}); max_frames caps fps sampling"
        )
    if max_frames is not None and fps is None:
        raise OptionsError(
            f"max_frames caps fps sampling and needs fps (got max_frames={max_frames} without "
            "fps); add --fps F, or use --num-frames N for a fixed count"
        )
    if num_frames is not None:
        check_positive_int("num_frames", num_frames, hint="e.g. --num-frames 16")
    if max_frames is not None:
        check_positive_int("max_frames", max_frames, hint="e.g. --max-frames 64")
    if fps is not None:
        check_positive_float("fps", fps, hint="frames per second of video, e.g. --fps 2")


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIDE:
            raise OptionsError(
                f"size {name} must be an integer from 1 to {MAX_SIDE} pixels (got {value!r}); "
                "e.g. --size 224x224"
            )
