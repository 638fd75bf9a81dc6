"""The sampling contract as pure functions: which frame indices a video gives for the options."""

from __future__ import annotations

import numpy as np
import pytest

from videoproc.video.sample import (
    cap_count,
    fps_indices,
    fps_times,
    frame_on_screen,
    keyframe_bound,
    nearest_keyframes,
    select_indices,
    uniform_indices,
)


def cfr(n: int, rate: float, start: float = 0.0) -> list[float]:
    return [start + k / rate for k in range(n)]


@pytest.mark.parametrize(
    ("n", "count", "expected"),
    [
        (10, 10, list(range(10))),  # N == n: every frame once
        (100, 4, [0, 33, 66, 99]),
        (90, 16, [0, 6, 12, 18, 24, 30, 36, 42, 47, 53, 59, 65, 71, 77, 83, 89]),
        (3, 5, [0, 0, 1, 2, 2]),  # n < N: linspace 0, .5, 1, 1.5, 2 rounds half to even
        (2, 6, [0, 0, 0, 1, 1, 1]),
        (1, 4, [0, 0, 0, 0]),  # a one-frame video still fills the fixed shape
        (5, 2, [0, 4]),  # first and last
    ],
)
def test_uniform_indices(n, count, expected):
    assert uniform_indices(n, count) == expected
    assert len(uniform_indices(n, count)) == count


@pytest.mark.parametrize(
    ("n", "expected"),
    # (n-1)/2 with numpy's round-half-to-even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4.
    [(1, 0), (2, 0), (3, 1), (4, 2), (6, 2), (8, 4), (9, 4), (125, 62)],
)
def test_single_frame_is_the_middle_with_numpy_rounding(n, expected):
    assert uniform_indices(n, 1) == [expected]
    assert expected == int(np.round((n - 1) / 2))


@pytest.mark.parametrize(("n", "count"), [(7, 3), (50, 16), (250, 16), (3, 16), (1000, 7), (17, 17)])
def test_uniform_indices_follow_numpy_linspace(n, count):
    expected = [int(i) for i in np.linspace(0, n - 1, count).round()]
    got = uniform_indices(n, count)
    assert got == expected
    assert got == sorted(got) and got[0] == 0 and got[-1] == n - 1


def test_uniform_indices_equal_numpy_linspace_everywhere():
    # Every frame count up to 600 and every sample count up to 64, plus long videos: the pure-Python
    # arithmetic must never round differently from numpy's.
    cases = [(n, c) for n in range(1, 601) for c in range(2, 65)]
    cases += [(n, c) for n in (18000, 107892, 10**6 + 7) for c in (2, 3, 16, 17, 100, 1000, 4097)]
    for n, count in cases:
        expected = [int(i) for i in np.linspace(0, n - 1, count).round()]
        assert uniform_indices(n, count) == expected, (n, count)


def test_uniform_indices_refuse_an_empty_video():
    with pytest.raises(ValueError, match=r"at least one frame to sample from \(got n=0\)"):
        uniform_indices(0, 4)


@pytest.mark.parametrize(
    ("duration", "fps", "expected"),
    [
        (3.0, 2.0, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),
        (1.0, 1.0, [0.0]),
        (0.1, 1.0, [0.0]),  # shorter than one sample period: still one sample
        (0.0, 5.0, [0.0]),
        (2.5, 2.0, [0.0, 0.5, 1.0, 1.5, 2.0]),  # floor(5.0) = 5
        (0.3, 10.0, [0.0, 0.1, 0.2]),  # 0.3 * 10 in floating point is 2.9999...; still 3
    ],
)
def test_fps_times(duration, fps, expected):
    assert fps_times(start=0.0, duration=duration, fps=fps) == pytest.approx(expected)


def test_fps_times_start_at_the_first_frame():
    assert fps_times(start=1.25, duration=1.0, fps=4.0) == pytest.approx([1.25, 1.5, 1.75, 2.0])


@pytest.mark.parametrize(
    ("t", "expected"),
    [(-1.0, 0), (0.0, 0), (0.09, 0), (0.1, 1), (0.35, 3), (1.0, 9), (100.0, 9)],
)
def test_frame_on_screen_is_the_last_frame_at_or_before_t(t, expected):
    assert frame_on_screen(cfr(10, 10.0), t) == expected


def test_frame_on_screen_tolerates_float_error_at_a_frame_start():
    # 3 * (1/30) lands a hair below frame 3's timestamp 0.1 in floating point.
    assert frame_on_screen(cfr(10, 30.0), 3 * (1 / 30)) == 3


def test_fps_sampling_constant_rate():
    # 30 fps, 3 s, sampled at 2 fps: one frame every 15.
    times = cfr(90, 30.0)
    assert fps_indices(times, duration=3.0, fps=2.0, max_frames=None) == [0, 15, 30, 45, 60, 75]


def test_fps_sampling_variable_frame_rate_picks_the_frame_on_screen():
    # 20 frames at 10 fps (0 .. 1.9 s), then 20 at 40 fps (2.0 .. 2.475 s): 2.5 s in all.
    times = [k / 10 for k in range(20)] + [2.0 + k / 40 for k in range(20)]
    got = fps_indices(times, duration=2.5, fps=4.0, max_frames=None)
    # t = 0, .25, .5, ..., 2.25: in the slow part frame floor(t*10); then 2.0 -> 20, 2.25 -> 30.
    assert got == [0, 2, 5, 7, 10, 12, 15, 17, 20, 30]
    # Index = t * average rate (16 fps) would pick 0, 4, 8, ... and land on the wrong frames.
    assert got != [round(t * 16) for t in np.arange(10) / 4]


def test_fps_above_the_source_rate_repeats_frames():
    times = cfr(10, 10.0)  # 1 s at 10 fps
    got = fps_indices(times, duration=1.0, fps=25.0, max_frames=None)
    assert len(got) == 25
    assert got == [int(k * 10 / 25 + 1e-9) for k in range(25)]
    assert got[:6] == [0, 0, 0, 1, 1, 2]


def test_fps_sampling_with_an_offset_first_timestamp():
    times = cfr(20, 10.0, start=5.0)
    assert fps_indices(times, duration=2.0, fps=2.0, max_frames=None) == [0, 5, 10, 15]


@pytest.mark.parametrize(
    ("count", "max_frames", "expected"),
    [
        (10, None, list(range(10))),
        (10, 10, list(range(10))),
        (10, 20, list(range(10))),  # fewer times than the cap: all kept, none invented
        (10, 4, [0, 3, 6, 9]),
        (10, 1, [4]),  # linspace(0, 9, 1) is the middle, like num_frames=1
        (100, 5, [0, 25, 50, 74, 99]),  # 24.75 -> 25, 49.5 -> 50 (even), 74.25 -> 74
    ],
)
def test_cap_count_keeps_linspace_positions(count, max_frames, expected):
    items = [1000 + i for i in range(count)]
    assert cap_count(items, max_frames) == [1000 + i for i in expected]


def test_max_frames_caps_fps_sampling():
    times = cfr(300, 30.0)  # 10 s
    uncapped = fps_indices(times, duration=10.0, fps=3.0, max_frames=None)
    capped = fps_indices(times, duration=10.0, fps=3.0, max_frames=8)
    assert len(uncapped) == 30 and len(capped) == 8
    keep = np.linspace(0, 29, 8).round().astype(int)
    assert capped == [uncapped[k] for k in keep]


def test_select_indices_dispatches_on_the_options():
    times = cfr(50, 10.0)
    assert select_indices(times, duration=5.0, num_frames=3, fps=None, max_frames=None) == [0, 24, 49]
    assert select_indices(times, duration=5.0, num_frames=None, fps=1.0, max_frames=None) == [0, 10, 20, 30, 40]
    assert select_indices(times, duration=5.0, num_frames=None, fps=1.0, max_frames=2) == [0, 40]


@pytest.mark.parametrize(
    ("targets", "keyframes", "expected"),
    [
        ([99], [0, 100, 200], 100),  # 0..99
        ([100], [0, 100, 200], 1),
        ([199, 99], [0, 100, 200], 200),
        ([98, 99], [0, 100, 200], 100),  # shared frames count once
        ([5, 5, 5], [0, 100], 6),  # repeated targets count once
        ([150, 250], [0, 100, 200], 51 + 51),
        ([3], [], 4),  # no keyframe known: from the start
    ],
)
def test_keyframe_bound(targets, keyframes, expected):
    assert keyframe_bound(targets, keyframes) == expected


@pytest.mark.parametrize(
    ("targets", "keyframes", "expected"),
    [
        ([0, 49, 50, 51, 99, 100, 180], [0, 100, 200], [0, 0, 0, 100, 100, 100, 200]),  # 50: tie -> earlier
        ([7, 3], [5], [5, 5]),
        ([260], [0, 100, 200], [200]),
    ],
)
def test_nearest_keyframes(targets, keyframes, expected):
    assert nearest_keyframes(targets, keyframes) == expected
