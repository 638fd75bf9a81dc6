"""Which frames to take: pure functions from a probe's timeline and the options to frame indices.

Indices are positions in presentation order (0 .. n-1) over the frames the stream really has.
Nothing here touches a decoder, so the sampling contract is tested exhaustively and cheaply.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence


def uniform_indices(num_frames_in_video: int, count: int) -> list[int]:
    """`count` indices spread evenly over `n` frames: linspace(0, n-1, count) with numpy's rounding.

    A single frame is the middle one. When the video has fewer frames than asked, indices repeat,
    so every row has exactly `count` frames (training batches need fixed shapes).
    """
    n = num_frames_in_video
    if n < 1:
        raise ValueError(f"a video needs at least one frame to sample from (got n={n})")
    if count == 1:
        return [round((n - 1) / 2)]
    # numpy's arithmetic, step for step: i * step in float64, the last one exactly n - 1, and
    # round() halves to even as numpy's round does. Plain Python costs a tenth of a linspace call.
    step = (n - 1) / (count - 1)
    return [round(i * step) for i in range(count - 1)] + [n - 1]


def fps_times(*, start: float, duration: float, fps: float) -> list[float]:
    """Sample times t_k = start + k/fps for k = 0 .. max(1, floor(duration*fps)) - 1, in seconds."""
    count = max(1, math.floor(duration * fps + 1e-9))
    return [start + k / fps for k in range(count)]


def frame_on_screen(timestamps: Sequence[float], t: float) -> int:
    """Index of the last frame whose timestamp is <= t: the frame a viewer sees at time t.

    Right for variable frame rate, where index = t * rate would pick the wrong frame.
    """
    i = bisect.bisect_right(timestamps, t + 1e-9) - 1
    return max(i, 0)


def cap_count(items: Sequence[int], max_count: int | None) -> list[int]:
    """Keep `max_count` of `items`, chosen by linspace(0, len-1, max_count) with numpy's rounding."""
    if max_count is None or len(items) <= max_count:
        return list(items)
    keep = uniform_indices(len(items), max_count)
    return [items[k] for k in keep]


def fps_indices(
    timestamps: Sequence[float], *, duration: float, fps: float, max_frames: int | None
) -> list[int]:
    """Frames on screen at each fps sample time, capped to `max_frames` when set."""
    times = fps_times(start=timestamps[0], duration=duration, fps=fps)
    indices = [frame_on_screen(timestamps, t) for t in times]
    return cap_count(indices, max_frames)


def select_indices(
    timestamps: Sequence[float],
    *,
    duration: float,
    num_frames: int | None,
    fps: float | None,
    max_frames: int | None,
) -> list[int]:
    """The sampling contract: uniform count when num_frames is set, otherwise fps sampling."""
    if num_frames is not None:
        return uniform_indices(len(timestamps), num_frames)
    assert fps is not None, "options validation guarantees fps or num_frames"
    return fps_indices(timestamps, duration=duration, fps=fps, max_frames=max_frames)


def keyframe_bound(targets: Sequence[int], keyframes: Sequence[int]) -> int:
    """Fewest frames an exact decoder must decode: from each target's preceding keyframe up to it,
    counting frames shared by several targets once. `keyframes` are sorted presentation indices."""
    covered: set[int] = set()
    for target in set(targets):
        k = bisect.bisect_right(keyframes, target) - 1
        start = keyframes[k] if k >= 0 else 0
        covered.update(range(start, target + 1))
    return len(covered)


def nearest_keyframes(targets: Sequence[int], keyframes: Sequence[int]) -> list[int]:
    """For keyframe seek mode: the keyframe nearest each target (the earlier one on a tie)."""
    result = []
    for target in targets:
        k = bisect.bisect_left(keyframes, target)
        candidates = [keyframes[j] for j in (k - 1, k) if 0 <= j < len(keyframes)]
        result.append(min(candidates, key=lambda kf: (abs(kf - target), kf)))
    return result
