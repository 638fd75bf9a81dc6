"""How each video becomes a frame tensor, and how that tensor is stored: the options of the video
stage, checked before any work.

Option names follow Dynamo's decoder config (fps, num_frames, max_frames, strict, max_alloc).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from videoproc.common.checks import check_choice, check_positive_float, check_positive_int
from videoproc.common.errors import OptionsError
from videoproc.common.memory import DEFAULT_MAX_ALLOC

ResizeMode = Literal["stretch", "crop", "pad"]
SeekMode = Literal["exact", "keyframe"]
ClipSampling = Literal["uniform", "random"]
ShortVideo = Literal["skip", "pad", "loop"]
FrameFormatName = Literal["raw", "png", "jpeg", "webp"]
Compression = Literal["none", "zstd"]
JpegChroma = Literal["444", "420"]
ZSTD_LEVELS = (1, 22)

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
    clips: ClipOptions | None = None
    store: FrameFormat = field(default_factory=lambda: FrameFormat())

    def __post_init__(self) -> None:
        _check_sampling(self.num_frames, self.fps, self.max_frames)
        if self.clips is not None:
            _check_clip_mode(self)
        elif self.num_frames is None and self.fps is None:
            object.__setattr__(self, "num_frames", DEFAULT_NUM_FRAMES)
        check_choice("resize_mode", self.resize_mode, ResizeMode)
        check_choice("seek_mode", self.seek_mode, SeekMode)
        if self.size is not None:
            _check_size(self.size)
        check_positive_int("max_alloc", self.max_alloc, hint="e.g. --max-alloc 512MiB")


@dataclass(frozen=True, kw_only=True)
class ClipOptions:
    """Clip mode: several windows of `frames` consecutive samples per video, one output row each.

    frames: samples per clip (T). fps: samples per second within a clip, each the frame on screen
    at start + k/fps; None takes `frames` consecutive source frames.
    Placement, one of: per_video clips spread uniformly, the first at the start and the last ending
    at the end (default 1, centred); stride seconds between clip starts, capped to max_clips chosen
    by linspace. sampling="random" draws per_video random starts, reproducible from seed and id.
    short_video: a video shorter than one clip is skipped (a `skipped` row), or gives one clip
    padded with its last frame, or one clip that loops the video.
    """

    frames: int
    fps: float | None = None
    per_video: int | None = None
    stride: float | None = None
    max_clips: int | None = None
    sampling: ClipSampling = "uniform"
    seed: int = 0
    short_video: ShortVideo = "skip"

    def __post_init__(self) -> None:
        check_positive_int("clip_frames", self.frames, hint="e.g. --clip-frames 16")
        if self.fps is not None:
            check_positive_float("clip_fps", self.fps, hint="samples per second within a clip, e.g. --clip-fps 8")
        check_choice("clip_sampling", self.sampling, ClipSampling)
        check_choice("short_video", self.short_video, ShortVideo)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise OptionsError(f"clip_seed must be an integer (got {self.seed!r}); e.g. --clip-seed 0")
        _check_placement(self)
        if self.per_video is None and self.stride is None:
            object.__setattr__(self, "per_video", 1)


@dataclass(frozen=True, kw_only=True)
class FrameFormat:
    """How a row's frames are stored (videoproc.video.encode makes the bytes).

    format: raw (uint8 pixels, one binary value per row), or one image per frame: png (lossless),
    jpeg or webp (lossy, `quality` 1-100). compression: raw only; none, or zstd at `zstd_level`
    (1-22) over the row's pixels. chroma: JPEG chroma subsampling; 444 (default) keeps saturated
    colour edges (at q90 4:2:0 fell to 28 dB PSNR on colour bars, 4:4:4 stayed at 38.8 dB or more).
    """

    format: FrameFormatName = "raw"
    quality: int = 90
    compression: Compression = "none"
    zstd_level: int = 3
    chroma: JpegChroma = "444"

    def __post_init__(self) -> None:
        check_choice("frame_format", self.format, FrameFormatName)
        check_choice("compression", self.compression, Compression)
        check_choice("jpeg_chroma", self.chroma, JpegChroma)
        if not isinstance(self.quality, int) or isinstance(self.quality, bool) or not 1 <= self.quality <= 100:
            raise OptionsError(f"frame_quality must be an integer from 1 to 100 (got {self.quality!r}); "
                               "e.g. --frame-quality 90")
        low, high = ZSTD_LEVELS
        level = self.zstd_level
        if not isinstance(level, int) or isinstance(level, bool) or not low <= level <= high:
            raise OptionsError(f"zstd level must be an integer from {low} to {high} (got {self.zstd_level!r}); "
                               "e.g. --compression zstd:3")
        if self.compression != "none" and self.format != "raw":
            raise OptionsError(
                f"compression {self.compression} applies to --frame-format raw only (got frame_format="
                f"{self.format!r}, whose images are compressed already); drop --compression or use raw"
            )

    def fingerprint(self) -> dict[str, object]:
        """The fields that change this format's bytes (quality means nothing to raw or png)."""
        if self.format == "raw":
            return {"format": "raw", "compression": self.compression,
                    **({"zstd_level": self.zstd_level} if self.compression == "zstd" else {})}
        if self.format == "png":
            return {"format": "png"}
        return {"format": self.format, "quality": self.quality,
                **({"chroma": self.chroma} if self.format == "jpeg" else {})}

    @property
    def is_default(self) -> bool:
        return self.format == "raw" and self.compression == "none"


def parse_compression(text: str) -> tuple[str, int | None]:
    """'none' -> ('none', None); 'zstd' -> ('zstd', None); 'zstd:9' -> ('zstd', 9)."""
    name, _, level = str(text).strip().lower().partition(":")
    if name not in ("none", "zstd") or (level and (name != "zstd" or not level.isdigit())):
        raise OptionsError(f"compression must be none, zstd or zstd:LEVEL (got {text!r}); e.g. --compression zstd:3")
    return name, int(level) if level else None


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


def _check_placement(clips: ClipOptions) -> None:
    if clips.per_video is not None and clips.stride is not None:
        raise OptionsError(
            f"clips_per_video and clip_stride cannot both be set (got clips_per_video={clips.per_video}, "
            f"clip_stride={clips.stride}); choose a count or a stride"
        )
    if clips.per_video is not None:
        check_positive_int("clips_per_video", clips.per_video, hint="e.g. --clips-per-video 8")
    if clips.stride is not None:
        check_positive_float("clip_stride", clips.stride, hint="seconds between clip starts, e.g. --clip-stride 2")
    if clips.max_clips is not None and clips.stride is None:
        raise OptionsError(
            f"max_clips caps --clip-stride placement and needs it (got max_clips={clips.max_clips} without "
            "clip_stride); add --clip-stride SECONDS, or use --clips-per-video K for a fixed count"
        )
    if clips.max_clips is not None:
        check_positive_int("max_clips", clips.max_clips, hint="e.g. --max-clips 8")
    if clips.sampling == "random" and clips.stride is not None:
        raise OptionsError(
            f"clip_sampling random draws --clips-per-video random starts and cannot use clip_stride (got "
            f"clip_stride={clips.stride}); drop --clip-stride and give --clips-per-video K"
        )


def _check_clip_mode(video: VideoOptions) -> None:
    given = {name: getattr(video, name) for name in ("num_frames", "fps", "max_frames")}
    clash = {name: value for name, value in given.items() if value is not None}
    if clash:
        shown = ", ".join(f"{name}={value}" for name, value in clash.items())
        raise OptionsError(
            f"clip mode (--clip-frames) cannot be combined with {', '.join(clash)} (got {shown}); a clip "
            "takes its frames from --clip-frames and --clip-fps, so drop --num-frames / --fps / --max-frames"
        )
    if video.seek_mode != "exact":
        raise OptionsError(
            f"clip mode needs seek_mode exact (got seek_mode={video.seek_mode!r}): keyframe mode would fill "
            "a clip with its nearest keyframe repeated; drop --seek-mode keyframe"
        )


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIDE:
            raise OptionsError(
                f"size {name} must be an integer from 1 to {MAX_SIDE} pixels (got {value!r}); "
                "e.g. --size 224x224"
            )
