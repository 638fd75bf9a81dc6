"""One converter per worker serves every video of a geometry: the pixels must not depend on what came before."""

from __future__ import annotations

import av
import numpy as np

from tests.conftest import ffmpeg_frames
from videoproc.common.testmedia import Clip
from videoproc.video.resize import FrameConverter, plan_resize, shared_converter

# The same geometry, different colour metadata: the pixels must follow each frame's own. The untagged
# clip (no matrix, range or chroma siting, like many phone encodes) is the one that matters most:
# a reused graph kept the previous frame's matrix when a frame named none, where explicit tags always
# replaced it.
VARIANTS = [
    Clip(name="reuse_untagged.mp4", args=(
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=1", "-c:v", "libx264",
        "-pix_fmt", "yuv420p")),
    Clip(name="reuse_bt601_tv.mp4", args=(
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
        "-colorspace", "smpte170m", "-color_range", "tv")),
    Clip(name="reuse_bt709_pc.mp4", args=(
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=1", "-vf", "hue=h=90", "-c:v", "libx264",
        "-pix_fmt", "yuvj420p", "-colorspace", "bt709", "-color_range", "pc")),
    Clip(name="reuse_bt709_tv_center.mp4", args=(
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=1", "-vf", "negate", "-c:v", "libx264",
        "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_range", "tv", "-chroma_sample_location", "center")),
]


def decoded(path: str) -> list:
    with av.open(path) as container:
        return list(container.decode(video=0))


def test_a_shared_converter_gives_each_video_what_a_fresh_one_gives(clip_factory):
    paths = [clip_factory(c) for c in VARIANTS]
    plan = plan_resize(96, 64, size=(40, 30), mode="stretch")
    shared = shared_converter(plan, rotation=0, threads=1)
    assert shared_converter(plan, rotation=0, threads=1) is shared
    # Interleaved, so every video follows every other, the untagged one after each tagged one.
    for path in paths + paths[::-1] + paths[1:] + paths[:1]:
        fresh = FrameConverter(plan, rotation=0, threads=1)
        for frame in decoded(path)[:3]:
            assert np.array_equal(shared(frame), fresh(frame)), path


def test_a_shared_converter_matches_the_cli_at_the_source_size(clip_factory):
    paths = [clip_factory(c) for c in VARIANTS]
    plan = plan_resize(96, 64, size=None, mode="stretch")
    shared = shared_converter(plan, rotation=0, threads=1)
    for path in paths * 2:
        ref = ffmpeg_frames(path)
        for i, frame in enumerate(decoded(path)):
            assert np.array_equal(shared(frame), ref[i]), (path, i)


def test_converters_are_kept_per_plan_and_rotation():
    plan = plan_resize(96, 64, size=(32, 32), mode="stretch")
    assert shared_converter(plan, rotation=90, threads=1) is not shared_converter(plan, rotation=0, threads=1)
    other = plan_resize(96, 64, size=(32, 16), mode="stretch")
    assert shared_converter(other, rotation=0, threads=1) is not shared_converter(plan, rotation=0, threads=1)
