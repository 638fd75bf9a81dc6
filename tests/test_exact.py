"""Decoded frames against the FFmpeg CLI, an independent decoder: exactness, seeks, rotation, resize."""

from __future__ import annotations

import functools
import itertools
import os

import numpy as np
import pytest

from tests.conftest import GENERATED_DIR, REAL_CLIPS, REAL_DIR, ffmpeg_frames, psnr
from tests.helpers import HEVC_OPEN_GOP, LONG_GOP, cli_frames, decode_file
from videoproc.common.testmedia import SAMPLE_CLIPS
from videoproc.source.options import SourceOptions
from videoproc.video.options import VideoOptions
from videoproc.video.process import VideoTask, process_video
from videoproc.video.resize import plan_resize
from videoproc.video.sample import keyframe_bound, nearest_keyframes, uniform_indices

TEN_BIT = "h264_10bits.mp4"
DAMAGED = "corrupted.mp4"
BIT_EXACT_REAL = [c for c in REAL_CLIPS if c not in (TEN_BIT, DAMAGED)]
GENERATED = sorted({c.name for c in SAMPLE_CLIPS} | {c.base.name for c in SAMPLE_CLIPS if c.base})


@functools.lru_cache(maxsize=8)
def reference(path: str, vf: str | None = None) -> np.ndarray:
    return ffmpeg_frames(path, vf=vf)


def real(name: str) -> str:
    return os.path.join(REAL_DIR, name)


def row(path: str, **video) -> object:
    task = VideoTask(row=0, id="clip", uri=path)
    return process_video(task, video=VideoOptions(**video), source=SourceOptions(), threads=1)


def row_frames(result) -> np.ndarray:
    return np.frombuffer(result.frames, np.uint8).reshape(result.shape)


@pytest.fixture(scope="module")
def long_gop(clip_factory) -> str:
    return clip_factory(LONG_GOP)


@pytest.fixture(scope="module")
def hevc_open_gop(clip_factory) -> str:
    return clip_factory(HEVC_OPEN_GOP)


def assert_exact(path: str, targets: list[int], **kwargs) -> object:
    info, out = decode_file(path, targets, **kwargs)
    ref = reference(path)
    assert len(ref) == info.num_frames
    assert out.indices == targets
    for slot, target in enumerate(targets):
        assert np.array_equal(out.frames[slot], ref[target]), f"frame {target} differs from the CLI's"
    return out


# -- every frame of every clip ----------------------------------------------------------------


def test_every_real_clip_is_covered():
    assert {TEN_BIT, DAMAGED} <= set(REAL_CLIPS)
    assert len(BIT_EXACT_REAL) >= 7


@pytest.mark.parametrize("name", BIT_EXACT_REAL + [f"generated/{n}" for n in GENERATED])
def test_every_frame_is_bit_identical_to_the_cli(name, sample_clips):
    path = os.path.join(GENERATED_DIR, name[10:]) if name.startswith("generated/") else real(name)
    info, out = decode_file(path)  # size=None: the displayed source size
    ref = reference(path)
    assert info.num_frames == len(ref), "frame count from packets must match the frames decoded"
    assert out.frames.shape == ref.shape
    assert out.indices == list(range(info.num_frames))
    assert out.timestamps == info.timestamps
    differ = [i for i in range(len(ref)) if not np.array_equal(out.frames[i], ref[i])]
    assert not differ, f"frames {differ[:10]} differ from the FFmpeg CLI's"


def test_ten_bit_converts_to_8_bit_rgb_close_to_the_cli():
    # swscale's 10-to-8-bit paths differ from the CLI's by large amounts at a few chroma edges of
    # this saturated test pattern, so the bound is on PSNR and on how many pixels differ at all.
    path = real(TEN_BIT)
    info, out = decode_file(path)
    ref = reference(path)
    assert info.pix_fmt == "yuv420p10le"
    assert out.frames.dtype == np.uint8 and out.frames.shape == ref.shape
    for i in range(len(ref)):
        diff = np.abs(out.frames[i].astype(np.int16) - ref[i])
        assert psnr(out.frames[i], ref[i]) >= 35.0, f"frame {i}"
        assert np.percentile(diff, 90) <= 2, f"frame {i}"
        # The right frame, not a neighbour: it matches its own reference best.
        neighbours = [psnr(out.frames[i], ref[j]) for j in (i - 1, i + 1) if 0 <= j < len(ref)]
        assert psnr(out.frames[i], ref[i]) > max(neighbours)


# -- damaged input ----------------------------------------------------------------------------


def test_damaged_clip_lenient_returns_real_frames():
    # The CLI conceals the bad packet and outputs one frame fewer than the packets; with one decoder
    # thread its concealment is the same as ours, so every returned frame must be one of its frames.
    path = real(DAMAGED)
    info, out = decode_file(path)
    ref = cli_frames(path, input_args=("-threads", "1"))
    substituted = [t for t, i in enumerate(out.indices) if i != t]
    assert substituted, "the damaged frame must be reported, not invented"
    assert len(ref) == info.num_frames - len(substituted)
    assert out.stats.decode_errors >= 1 and out.stats.substituted == len(substituted)
    for t in substituted:
        assert out.indices[t] < t  # the nearest earlier decodable frame, with its real index
        assert out.timestamps[t] == info.timestamps[out.indices[t]]
    for slot, index in enumerate(out.indices):
        cli_position = index - sum(1 for t in substituted if t < index)
        assert np.array_equal(out.frames[slot], ref[cli_position]), f"slot {slot} (frame {index})"
    # Every frame decoded once: a missing frame must not send the decoder back to the keyframe.
    assert out.stats.seeks == 0 and out.stats.frames_decoded == len(ref)  # decoded from the start, no seek


def test_damaged_clip_row_is_ok_with_decode_errors():
    result = row(real(DAMAGED), num_frames=50, size=None)
    assert result.status == "ok", result.error
    assert result.decode_errors > 0
    assert result.shape == (50, 720, 1280, 3)
    assert len(set(result.frame_indices)) == 49


def test_damaged_clip_strict_fails_with_the_time():
    path = real(DAMAGED)
    info, out = decode_file(path)
    bad = next(t for t, i in enumerate(out.indices) if i != t)
    result = row(path, num_frames=16, strict=True)
    assert result.status == "failed"
    assert f"decode error at t={info.timestamps[bad]:.3f}s (strict mode)" in result.error


# -- seeks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "targets",
    [
        [99],  # just before a keyframe: decoded from the previous one
        [199],
        [100],
        [98, 99, 199, 200],
        [0, 249],
        [5, 150, 99, 199, 249, 100],  # out of order: returned in the order asked
        [120, 20, 120, 20],  # repeats
        [249, 248, 101, 100, 99],
        uniform_indices(250, 16),
        uniform_indices(250, 5),
    ],
)
def test_seeks_on_a_long_gop_clip_are_exact(long_gop, targets):
    out = assert_exact(long_gop, targets)
    info, _ = decode_file(long_gop, [0])
    assert info.keyframes == (0, 100, 200)
    assert out.stats.frames_decoded <= 1.05 * keyframe_bound(targets, info.keyframes)


def test_hevc_open_gop_every_frame_alone(hevc_open_gop):
    info, _ = decode_file(hevc_open_gop, [0])
    assert info.codec == "hevc" and len(info.keyframes) >= 3
    for target in range(info.num_frames):  # a fresh decoder each: every target forces a seek
        assert_exact(hevc_open_gop, [target])


@pytest.mark.parametrize("targets", [[23, 26], [24, 25], [21, 49, 50], [74, 24, 99]])
def test_hevc_open_gop_leading_frames(hevc_open_gop, targets):
    # 21..24 are shown before the keyframe at 25 but decoded after it.
    assert_exact(hevc_open_gop, targets)


def test_real_hevc_clip_any_pair_of_targets():
    path = real("h265_video.mp4")
    n = len(reference(path))
    for targets in itertools.combinations(range(n), 2):
        assert_exact(path, list(targets[::-1]))


@pytest.mark.parametrize("fake_keyframe", [21, 22, 23, 24])
def test_a_seek_past_its_target_is_detected_and_corrected(hevc_open_gop, fake_keyframe):
    # An index that calls a leading frame a keyframe sends the seek to the next real keyframe (25),
    # past the target: the decoder must notice and start again from an earlier keyframe.
    info, _ = decode_file(hevc_open_gop, [0])
    keyframes = sorted(set(info.keyframes) | {fake_keyframe})
    out = assert_exact(hevc_open_gop, [fake_keyframe], keyframes=keyframes)
    assert out.stats.seeks >= 2


def test_decode_cost_follows_the_frames_sampled(long_gop):
    for video in ({"num_frames": 16}, {"num_frames": 3}, {"fps": 1.0}, {"fps": 0.5, "max_frames": 3}):
        result = row(long_gop, **video, size=(32, 32))
        assert result.status == "ok"
        assert result.frames_decoded <= 1.05 * result.frames_decoded_min, video
    assert row(long_gop, num_frames=2, size=(32, 32)).frames_decoded <= 52  # frames 0 and 200..249


def test_keyframe_seek_mode_returns_keyframes_with_their_real_indices(long_gop):
    targets = [10, 60, 150, 180, 240]
    info, out = decode_file(long_gop, targets, seek_mode="keyframe")
    expected = nearest_keyframes(targets, info.keyframes)
    assert expected == [0, 100, 100, 200, 200]
    assert out.indices == expected
    assert out.timestamps == [info.timestamps[k] for k in expected]
    ref = reference(long_gop)
    for slot, keyframe in enumerate(expected):
        assert np.array_equal(out.frames[slot], ref[keyframe])


# -- rotation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["real/video_90.mov", "generated/rotated_90.mp4"])
def test_rotation_is_applied_like_the_cli(name, sample_clips):
    folder, file = name.split("/")
    path = os.path.join(REAL_DIR if folder == "real" else GENERATED_DIR, file)
    result = row(path, num_frames=3, size=None)
    assert result.status == "ok"
    assert result.source["rotation"] in (90, 270)
    ref = reference(path)
    coded = (result.source["source_height"], result.source["source_width"])
    assert result.shape[1:3] == ref.shape[1:3] == coded[::-1]  # the displayed picture: sides swapped
    frames = row_frames(result)
    for slot, index in enumerate(result.frame_indices):
        assert np.array_equal(frames[slot], ref[index])

    kept = row(path, num_frames=3, size=None, autorotate=False)
    raw = cli_frames(path, input_args=("-noautorotate",))
    assert kept.shape[1:3] == raw.shape[1:3] == coded
    assert kept.source["rotation"] == 0
    for slot, index in enumerate(kept.frame_indices):
        assert np.array_equal(row_frames(kept)[slot], raw[index])


def test_rotated_resize_gives_the_displayed_shape(sample_clips):
    path = sample_clips["rotated_90.mp4"]
    result = row(path, num_frames=4, size=(48, 64))
    assert result.shape == (4, 64, 48, 3)
    ref = reference(path, "scale=48:64:flags=bilinear")
    frames = row_frames(result)
    for slot, index in enumerate(result.frame_indices):
        assert psnr(frames[slot], ref[index]) >= 35.0


# -- resize -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("carphone_pristine.mp4", (224, 224)),  # up
        ("big_buck_bunny_432_433.webm", (224, 224)),  # down, 720p VP8
        ("nasa_13013.mp4", (100, 300)),
        ("av1_video.mkv", (160, 90)),
        ("h265_video.mp4", (300, 200)),
        ("generated/testsrc_h264_3s.mp4", (224, 224)),  # saturated colour edges
        ("generated/testsrc_h264_3s.mp4", (17, 31)),
    ],
)
def test_stretch_matches_the_cli_bilinear_scale(name, size, sample_clips):
    path = os.path.join(GENERATED_DIR, name[10:]) if name.startswith("generated/") else real(name)
    width, height = size
    ref = reference(path, f"scale={width}:{height}:flags=bilinear")
    targets = uniform_indices(len(ref), 6)
    _, out = decode_file(path, targets, size=size, mode="stretch")
    assert out.frames.shape == (6, height, width, 3)
    for slot, index in enumerate(targets):
        assert psnr(out.frames[slot], ref[index]) >= 35.0, f"frame {index}"


def test_size_original_row_is_bit_identical(sample_clips):
    path = sample_clips["testsrc_h264_3s.mp4"]
    result = row(path, num_frames=5, size=None)
    ref = reference(path)
    frames = row_frames(result)
    for slot, index in enumerate(result.frame_indices):
        assert np.array_equal(frames[slot], ref[index])


@pytest.mark.parametrize(
    ("src", "size", "expected"),
    [
        ((320, 240), (224, 224), dict(scale_width=299, scale_height=224, crop_left=37, crop_top=0)),
        ((240, 320), (224, 224), dict(scale_width=224, scale_height=299, crop_left=0, crop_top=37)),
        ((1280, 720), (100, 100), dict(scale_width=178, scale_height=100, crop_left=39, crop_top=0)),
        ((100, 100), (50, 50), dict(scale_width=50, scale_height=50, crop_left=0, crop_top=0)),
        ((10, 1000), (64, 32), dict(scale_width=64, scale_height=6400, crop_left=0, crop_top=3184)),
    ],
)
def test_plan_crop_covers_then_centres(src, size, expected):
    plan = plan_resize(*src, size=size, mode="crop")
    assert (plan.out_width, plan.out_height) == size
    assert {k: getattr(plan, k) for k in expected} == expected
    assert plan.scale_width >= size[0] and plan.scale_height >= size[1]
    assert (plan.pad_left, plan.pad_top) == (0, 0)


@pytest.mark.parametrize(
    ("src", "size", "expected"),
    [
        ((320, 240), (224, 224), dict(scale_width=224, scale_height=168, pad_left=0, pad_top=28)),
        ((240, 320), (224, 224), dict(scale_width=168, scale_height=224, pad_left=28, pad_top=0)),
        ((1280, 720), (100, 100), dict(scale_width=100, scale_height=56, pad_left=0, pad_top=22)),
        ((10000, 10), (64, 64), dict(scale_width=64, scale_height=1, pad_left=0, pad_top=31)),
    ],
)
def test_plan_pad_fits_then_centres(src, size, expected):
    plan = plan_resize(*src, size=size, mode="pad")
    assert (plan.out_width, plan.out_height) == size
    assert {k: getattr(plan, k) for k in expected} == expected
    assert plan.scale_width <= size[0] and plan.scale_height <= size[1]
    assert (plan.crop_left, plan.crop_top) == (0, 0)


def test_plan_stretch_and_original():
    assert plan_resize(320, 240, size=(64, 64), mode="stretch").scale_width == 64
    plan = plan_resize(320, 240, size=None, mode="crop")
    assert (plan.scale_width, plan.scale_height, plan.out_width, plan.out_height) == (320, 240, 320, 240)


def test_crop_decode_is_the_centre_of_the_scaled_picture(sample_clips):
    path = sample_clips["testsrc_h264_3s.mp4"]  # 320x240 -> cover 299x224 -> centre 224x224
    plan = plan_resize(320, 240, size=(224, 224), mode="crop")
    ref = reference(path, f"scale={plan.scale_width}:{plan.scale_height}:flags=bilinear")
    targets = [0, 45, 89]
    _, out = decode_file(path, targets, size=(224, 224), mode="crop")
    assert out.frames.shape == (3, 224, 224, 3)
    for slot, index in enumerate(targets):
        window = ref[index, plan.crop_top : plan.crop_top + 224, plan.crop_left : plan.crop_left + 224]
        assert psnr(out.frames[slot], window) >= 35.0


def test_pad_decode_is_the_scaled_picture_on_black(sample_clips):
    path = sample_clips["testsrc_h264_3s.mp4"]  # 320x240 -> fit 224x168 -> 28 black rows above/below
    plan = plan_resize(320, 240, size=(224, 224), mode="pad")
    ref = reference(path, f"scale={plan.scale_width}:{plan.scale_height}:flags=bilinear")
    targets = [0, 45, 89]
    _, out = decode_file(path, targets, size=(224, 224), mode="pad")
    assert out.frames.shape == (3, 224, 224, 3)
    top, height = plan.pad_top, plan.scale_height
    assert not out.frames[:, :top].any() and not out.frames[:, top + height :].any()
    for slot, index in enumerate(targets):
        assert psnr(out.frames[slot, top : top + height], ref[index]) >= 35.0


# -- fps sampling on a variable frame rate clip -----------------------------------------------


def test_fps_sampling_on_vfr_picks_the_frame_on_screen(sample_clips):
    path = sample_clips["vfr.mkv"]  # frames 0-19 at 10 fps, then 20-39 at 40 fps
    result = row(path, fps=4.0, size=None)
    assert result.status == "ok"
    assert result.frame_indices == [0, 2, 5, 7, 10, 12, 15, 17, 20, 30]
    assert result.timestamps == pytest.approx([0.0, 0.2, 0.5, 0.7, 1.0, 1.2, 1.5, 1.7, 2.0, 2.25])
    ref = reference(path)
    frames = row_frames(result)
    for slot, index in enumerate(result.frame_indices):
        assert np.array_equal(frames[slot], ref[index])
    capped = row(path, fps=4.0, max_frames=4, size=(16, 16))
    assert capped.frame_indices == [0, 7, 15, 30]


@pytest.mark.parametrize(("available", "size", "frames", "expected"), [
    (2, (176, 144), 1000, 1), (2, (320, 180), 1000, 1), (8, (568, 320), 100, 8), (2, (640, 360), 10, 1),
    (2, (640, 360), 30, 2), (2, (1280, 720), 5, 2), (2, (1920, 1080), 1, 1), (1, (1920, 1080), 100, 1),
])
def test_small_pictures_and_short_walks_decode_on_one_thread(available, size, frames, expected):
    from videoproc.video.decode import decoder_threads

    assert decoder_threads(available, width=size[0], height=size[1], frames=frames) == expected


@pytest.mark.parametrize(("name", "threads"), [
    ("carphone_pristine.mp4", 1),  # 176x144
    ("video_90.mov", 1),  # 568x320, but 3 frames
    ("av1_video.mkv", 2),  # 640x360, 125 frames
])
def test_a_video_gets_the_threads_its_picture_size_repays(name, threads, monkeypatch):
    """Frames are the same with any thread count; what a decoder is given follows its picture size."""
    import videoproc.video.process as process

    given = []
    real_decoder = process.FrameDecoder

    def spy(*args, **kwargs):
        given.append(kwargs["threads"])
        return real_decoder(*args, **kwargs)

    monkeypatch.setattr(process, "FrameDecoder", spy)
    task = VideoTask(row=0, id="clip", uri=real(name))
    two = process_video(task, video=VideoOptions(num_frames=8), source=SourceOptions(), threads=2)
    assert given == [threads]
    np.testing.assert_array_equal(row_frames(two), row_frames(row(real(name), num_frames=8)))


def test_keyframe_mode_weighs_the_frames_it_decodes_not_the_keyframe_bound(monkeypatch):
    """av1_video.mkv (640x360, one keyframe): 16 targets walk 125 frames in exact mode (two threads
    pay) but decode about 16 in keyframe mode (they do not)."""
    import videoproc.video.process as process

    given = []
    real_decoder = process.FrameDecoder
    monkeypatch.setattr(process, "FrameDecoder", lambda *a, **k: given.append(k["threads"]) or real_decoder(*a, **k))
    task = VideoTask(row=0, id="clip", uri=real("av1_video.mkv"))
    for mode in ("exact", "keyframe"):
        process_video(task, video=VideoOptions(num_frames=16, seek_mode=mode), source=SourceOptions(), threads=2)
    assert given == [2, 1]
