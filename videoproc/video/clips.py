"""Where the clips of a video lie: pure functions from a probe's timeline and ClipOptions to clips.

A clip is `frames` samples in a row. With a clip fps F, sample k of a clip starting at time s is
the frame on screen at s + k/F (the fps contract, per clip); without one it is the clip's k-th
consecutive source frame. Clip starts are spread uniformly (the first clip at the start of the
video, the last ending at its end), a stride apart (capped by linspace), or drawn at random from a
generator seeded with sha256(seed, id), so they never depend on Python's salted hash().
Nothing here touches a decoder, so placement is tested exhaustively and cheaply.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from videoproc.video.options import ClipOptions
from videoproc.video.sample import cap_count, frame_on_screen, uniform_indices

_EPS = 1e-9


class ShortVideo(Exception):
    """The video is shorter than one clip and short_video is "skip"; the message says by how much."""


@dataclass(frozen=True, kw_only=True)
class Clip:
    """One clip: presentation indices of its frames, and its window [start, end) in seconds.
    start is its first sample time; end is start + frames/fps, or (consecutive frames) the time the
    frame after its last one appears, the video's end for the last frame."""

    indices: tuple[int, ...]
    start: float
    end: float


def place_clips(timestamps: Sequence[float], *, duration: float, options: ClipOptions, key: str) -> list[Clip]:
    """The clips of one video, in time order. `key` (the row id) seeds random placement.
    Raises ShortVideo when no whole clip fits and short_video is "skip"."""
    if options.fps is None:
        return _frame_clips(timestamps, duration=duration, options=options, key=key)
    return _timed_clips(timestamps, duration=duration, options=options, key=key)


def clip_count(timestamps: Sequence[float], *, duration: float, options: ClipOptions) -> int:
    """How many clips place_clips makes, computed without making them (for the memory check)."""
    if options.per_video is not None:
        return options.per_video if _fits(timestamps, duration, options) else 1
    span = _latest_start(timestamps, duration, options) - timestamps[0]
    count = math.floor(span / options.stride + _EPS) + 1 if span >= -_EPS else 1
    return min(count, options.max_clips) if options.max_clips is not None else count


def clip_rng(seed: int, key: str) -> random.Random:
    """A generator that depends on the seed and the id only: same run or not, same machine or not."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# -- clip fps: samples at s + k/F ----------------------------------------------------------------


def _timed_clips(timestamps: Sequence[float], *, duration: float, options: ClipOptions, key: str) -> list[Clip]:
    t0, fps, count = timestamps[0], options.fps, options.frames
    if not _fits(timestamps, duration, options):
        return [_short_timed(timestamps, duration=duration, options=options)]
    starts = _starts(t0, _latest_start(timestamps, duration, options), options, key=key)
    return [_timed_clip(timestamps, s, fps=fps, count=count) for s in starts]


def _timed_clip(timestamps: Sequence[float], start: float, *, fps: float, count: int) -> Clip:
    indices = tuple(frame_on_screen(timestamps, start + k / fps) for k in range(count))
    return Clip(indices=indices, start=start, end=start + count / fps)


def _short_timed(timestamps: Sequence[float], *, duration: float, options: ClipOptions) -> Clip:
    """One clip from the start: past the end, pad shows the last frame (what is on screen), loop
    wraps the sample time around to the start of the video."""
    _refuse_short(timestamps, duration, options)
    t0, fps, count = timestamps[0], options.fps, options.frames
    times = [k / fps for k in range(count)]
    if options.short_video == "loop" and duration > 0:
        times = [t % duration for t in times]
    return Clip(indices=tuple(frame_on_screen(timestamps, t0 + t) for t in times), start=t0, end=t0 + count / fps)


# -- consecutive source frames ------------------------------------------------------------------


def _frame_clips(timestamps: Sequence[float], *, duration: float, options: ClipOptions, key: str) -> list[Clip]:
    n, count = len(timestamps), options.frames
    if n < count:
        _refuse_short(timestamps, duration, options)
        indices = [min(k, n - 1) if options.short_video == "pad" else k % n for k in range(count)]
        return [Clip(indices=tuple(indices), start=timestamps[0], end=_end_time(timestamps, duration, n))]
    firsts = _first_frames(timestamps, options, key=key)
    return [
        Clip(indices=tuple(range(f, f + count)), start=timestamps[f], end=_end_time(timestamps, duration, f + count))
        for f in firsts
    ]


def _first_frames(timestamps: Sequence[float], options: ClipOptions, *, key: str) -> list[int]:
    """First frame of each clip: starts are frame positions 0 .. n - frames."""
    last = len(timestamps) - options.frames
    if options.sampling == "random":
        rng = clip_rng(options.seed, key)
        return sorted(rng.randint(0, last) for _ in range(options.per_video))
    if options.per_video is not None:
        return uniform_indices(last + 1, options.per_video)  # a single clip is centred
    starts = _starts(timestamps[0], timestamps[last], options, key=key)
    return [frame_on_screen(timestamps, s) for s in starts]


def _end_time(timestamps: Sequence[float], duration: float, after: int) -> float:
    """When frame `after` appears: the end of the frame before it; the video's end past the last."""
    return timestamps[after] if after < len(timestamps) else timestamps[0] + duration


# -- shared ------------------------------------------------------------------------------------


def _starts(t0: float, latest: float, options: ClipOptions, *, key: str) -> list[float]:
    """Clip start times in [t0, latest] by the placement options (latest >= t0)."""
    if options.sampling == "random":
        rng = clip_rng(options.seed, key)
        return sorted(t0 + rng.random() * (latest - t0) for _ in range(options.per_video))
    if options.per_video is not None:
        count = options.per_video
        if count == 1:
            return [t0 + (latest - t0) / 2]
        step = (latest - t0) / (count - 1)
        return [t0 + i * step for i in range(count - 1)] + [latest]
    stride = options.stride
    total = math.floor((latest - t0) / stride + _EPS) + 1
    # cap_count over a range: the kept starts are chosen without listing every one of them.
    return [t0 + j * stride for j in cap_count(range(total), options.max_clips)]


def _latest_start(timestamps: Sequence[float], duration: float, options: ClipOptions) -> float:
    if options.fps is None:
        last = len(timestamps) - options.frames
        return timestamps[max(last, 0)]
    return timestamps[0] + duration - options.frames / options.fps


def _fits(timestamps: Sequence[float], duration: float, options: ClipOptions) -> bool:
    if options.fps is None:
        return len(timestamps) >= options.frames
    return options.frames <= math.floor(duration * options.fps + _EPS)


def _refuse_short(timestamps: Sequence[float], duration: float, options: ClipOptions) -> None:
    if options.short_video != "skip":
        return
    if options.fps is None:
        raise ShortVideo(
            f"video has {len(timestamps)} frames, fewer than one clip of {options.frames} frames; "
            "--short-video pad or loop makes one clip of it"
        )
    raise ShortVideo(
        f"video lasts {duration:.3f} s, shorter than one clip of {options.frames} frames at "
        f"{options.fps:g} fps ({options.frames / options.fps:.3f} s); --short-video pad or loop makes one clip of it"
    )
