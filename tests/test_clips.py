"""Clip placement (videoproc.video.clips) and clip options: pure functions, tested exhaustively."""

from __future__ import annotations

import itertools

import pytest

from videoproc.common.errors import OptionsError
from videoproc.preprocess.config import build_options, merge_flags
from videoproc.video.clips import ShortVideo, clip_count, clip_rng, place_clips
from videoproc.video.options import ClipOptions, VideoOptions
from videoproc.video.sample import frame_on_screen

CFR = [i / 30 for i in range(300)]  # 10 s at 30 fps
# Variable frame rate: 10 fps for 2 s, then 50 fps for 1 s, then 5 fps for 2 s, starting at 0.5 s.
VFR = [0.5 + i / 10 for i in range(20)] + [2.5 + i / 50 for i in range(50)] + [3.5 + i / 5 for i in range(10)]


def place(timestamps=CFR, duration=10.0, key="a", **options):
    return place_clips(timestamps, duration=duration, options=ClipOptions(**options), key=key)


@pytest.mark.parametrize("timeline,duration", [(CFR, 10.0), (VFR, 5.0)])
@pytest.mark.parametrize("frames,fps,per_video", list(itertools.product([1, 4, 16], [1.0, 3.0, 8.0, 29.97], [1, 2, 5])))
def test_fps_clips_sample_the_frame_on_screen_at_each_time(timeline, duration, frames, fps, per_video):
    if frames / fps > duration:
        return
    clips = place(timeline, duration, frames=frames, fps=fps, per_video=per_video)
    assert len(clips) == per_video == clip_count(timeline, duration=duration, options=ClipOptions(
        frames=frames, fps=fps, per_video=per_video))
    t0, latest = timeline[0], timeline[0] + duration - frames / fps
    for clip in clips:
        assert t0 - 1e-9 <= clip.start <= latest + 1e-9
        assert clip.end == pytest.approx(clip.start + frames / fps)
        assert list(clip.indices) == [frame_on_screen(timeline, clip.start + k / fps) for k in range(frames)]
    if per_video > 1:
        assert clips[0].start == t0 and clips[-1].end == pytest.approx(t0 + duration)
    else:
        assert clips[0].start == pytest.approx((t0 + latest) / 2)


def test_vfr_clip_picks_by_time_not_by_frame_count():
    (clip,) = place(VFR, 5.0, frames=4, fps=10.0, per_video=1)  # centred: 0.5 + (5 - 0.4) / 2 = 2.8 s
    assert clip.start == pytest.approx(2.8)
    assert clip.indices == (35, 40, 45, 50)  # 2.8 .. 3.1 s in the 50 fps stretch: every fifth frame
    (clip,) = place(VFR, 5.0, frames=4, fps=10.0, stride=1.8, max_clips=2)[:1]
    assert clip.indices == (0, 1, 2, 3)


@pytest.mark.parametrize("per_video", [1, 2, 3, 7, 291])
def test_consecutive_frame_clips_are_contiguous_and_span_the_video(per_video):
    clips = place(frames=10, per_video=per_video)
    assert len(clips) == per_video
    for clip in clips:
        first = clip.indices[0]
        assert clip.indices == tuple(range(first, first + 10))
        assert clip.start == CFR[first]
        assert clip.end == (CFR[first + 10] if first + 10 < 300 else 10.0)
    if per_video > 1:
        assert clips[0].indices[0] == 0 and clips[-1].indices[-1] == 299
    else:
        assert clips[0].indices[0] == 145  # centred: round(290 / 2)


@pytest.mark.parametrize("stride,max_clips,starts", [
    (3.0, None, [0.0, 3.0, 6.0]),  # 4 frames at 2 fps last 2 s: the last start is 8 s
    (3.0, 2, [0.0, 6.0]),
    (2.0, None, [0.0, 2.0, 4.0, 6.0, 8.0]),
    (2.0, 3, [0.0, 4.0, 8.0]),
    (100.0, None, [0.0]),
])
def test_stride_placement_and_its_cap(stride, max_clips, starts):
    clips = place(frames=4, fps=2.0, stride=stride, max_clips=max_clips)
    assert [c.start for c in clips] == pytest.approx(starts)
    assert clip_count(CFR, duration=10.0, options=ClipOptions(frames=4, fps=2.0, stride=stride,
                                                              max_clips=max_clips)) == len(starts)


def test_stride_with_consecutive_frames_starts_at_the_frame_on_screen():
    clips = place(frames=30, stride=2.5)
    assert [c.indices[0] for c in clips] == [0, 75, 150, 225]  # the last start must leave 30 frames
    assert clip_count(CFR, duration=10.0, options=ClipOptions(frames=30, stride=2.5)) == 4


def test_random_starts_depend_on_seed_and_id_only():
    a = place(frames=8, fps=4.0, per_video=5, sampling="random", seed=1, key="video-1")
    assert a == place(frames=8, fps=4.0, per_video=5, sampling="random", seed=1, key="video-1")
    assert a != place(frames=8, fps=4.0, per_video=5, sampling="random", seed=2, key="video-1")
    assert a != place(frames=8, fps=4.0, per_video=5, sampling="random", seed=1, key="video-2")
    assert [c.start for c in a] == sorted(c.start for c in a)
    assert all(0 <= c.start <= 8.0 for c in a)
    # A fixed value: the generator is sha256-seeded, the same in every process and Python build.
    assert clip_rng(0, "x").randint(0, 10**9) == 818478048
    frames = place(frames=20, per_video=4, sampling="random", seed=3, key="k")
    assert all(c.indices == tuple(range(c.indices[0], c.indices[0] + 20)) for c in frames)


def test_short_video_is_skipped_with_the_reason():
    with pytest.raises(ShortVideo, match=r"lasts 1.000 s, shorter than one clip of 16 frames at 8 fps \(2.000 s\)"):
        place(CFR[:30], 1.0, frames=16, fps=8.0)
    with pytest.raises(ShortVideo, match="video has 30 frames, fewer than one clip of 31 frames"):
        place(CFR[:30], 1.0, frames=31)


def test_short_video_pad_and_loop():
    (pad,) = place(CFR[:30], 1.0, frames=12, fps=8.0, per_video=3, short_video="pad")
    assert pad.indices == (0, 3, 7, 11, 15, 18, 22, 26, 29, 29, 29, 29)  # floor(k / 8 * 30), then the last
    (loop,) = place(CFR[:30], 1.0, frames=12, fps=8.0, short_video="loop")
    assert loop.indices == tuple(frame_on_screen(CFR[:30], (k / 8) % 1.0) for k in range(12))
    assert loop.indices[8] == 0
    (pad,) = place(CFR[:5], 5 / 30, frames=8, short_video="pad")
    assert pad.indices == (0, 1, 2, 3, 4, 4, 4, 4)
    (loop,) = place(CFR[:5], 5 / 30, frames=8, short_video="loop", stride=1.0)
    assert loop.indices == (0, 1, 2, 3, 4, 0, 1, 2)


def test_a_video_exactly_one_clip_long_repeats_it_to_keep_the_count():
    # Like --num-frames on a short video: every video gives the same number of rows.
    clips = place(CFR, 10.0, frames=80, fps=8.0, per_video=4)
    assert len(clips) == 4 and all(c == clips[0] for c in clips) and clips[0].start == 0.0
    assert len(place(CFR, 10.0, frames=300, per_video=3)) == 3


# -- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,message", [
    ({"frames": 0}, r"clip_frames must be a positive integer.*got 0.*--clip-frames 16"),
    ({"frames": 4, "fps": -1.0}, r"clip_fps must be a positive finite number \(got -1.0\)"),
    ({"frames": 4, "per_video": 2, "stride": 1.0}, "clips_per_video and clip_stride cannot both be set"),
    ({"frames": 4, "max_clips": 3}, "max_clips caps --clip-stride placement and needs it"),
    ({"frames": 4, "stride": 1.0, "sampling": "random"}, "clip_sampling random .* cannot use clip_stride"),
    ({"frames": 4, "sampling": "any"}, r"clip_sampling must be one of uniform, random \(got 'any'\)"),
    ({"frames": 4, "short_video": "drop"}, r"short_video must be one of skip, pad, loop"),
    ({"frames": 4, "seed": "x"}, r"clip_seed must be an integer \(got 'x'\)"),
    ({"frames": 4, "per_video": 0}, r"clips_per_video must be a positive integer"),
])
def test_bad_clip_options_name_value_rule_and_fix(kwargs, message):
    with pytest.raises(OptionsError, match=message):
        ClipOptions(**kwargs)


def test_clip_mode_excludes_the_other_sampling_options():
    with pytest.raises(OptionsError, match=r"cannot be combined with num_frames \(got num_frames=8\)"):
        VideoOptions(num_frames=8, clips=ClipOptions(frames=4))
    with pytest.raises(OptionsError, match="clip mode needs seek_mode exact"):
        VideoOptions(seek_mode="keyframe", clips=ClipOptions(frames=4))
    video = VideoOptions(clips=ClipOptions(frames=4))
    assert video.num_frames is None and video.clips.per_video == 1


def test_clip_flags_replace_the_job_files_sampling_group():
    values = merge_flags({"num_frames": 8, "output": "o"}, {"clip_frames": 16, "clip_fps": 8.0, "fps": None})
    options = build_options(manifest="m", values=values)
    assert options.video.num_frames is None
    assert options.video.clips == ClipOptions(frames=16, fps=8.0, per_video=1)
    assert "clips" in options.result_fingerprint()["video"]
    plain = build_options(manifest="m", values={"output": "o"})
    assert "clips" not in plain.result_fingerprint()["video"]  # older outputs still resume
    with pytest.raises(OptionsError, match="--clips-per-video set.*needs --clip-frames T"):
        build_options(manifest="m", values={"output": "o", "clips_per_video": 3})
