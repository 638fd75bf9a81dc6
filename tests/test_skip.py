"""Non-reference frames that are not sampled are skipped, and the sampled frames stay exact."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

import videoproc.video.skip
from tests.conftest import REAL_DIR, ffmpeg_frames
from tests.helpers import HEVC_OPEN_GOP, LONG_GOP, cli_frames, decode_file, named_clip
from videoproc.video.sample import keyframe_bound, uniform_indices
from videoproc.video.skip import NonReferenceSkipper

# H.264 and HEVC clips with B-frames that reference nothing: skipping must show in the counts.
WITH_NONREF = ["real/carphone_pristine.mp4", "real/nasa_13013.mp4",
               "generated/testsrc_h264_3s.mp4", "generated/vfr.mkv"]


def sparse_targets(n: int) -> list[int]:
    # Uniform picks plus odd neighbours, so targets land on B-frames as well as on references.
    return sorted(set(uniform_indices(n, 5)) | {min(n - 1, 3), n // 2 + 1, max(0, n - 2)})


def decode_without_skipping(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setattr(videoproc.video.skip, "NONREF_SKIP_CODECS", frozenset())
        return decode_file(*args, **kwargs)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", WITH_NONREF)
def test_skipping_decodes_fewer_frames_and_returns_the_clis(name, threads, sample_clips):
    path = named_clip(name)
    ref = ffmpeg_frames(path)
    targets = sparse_targets(len(ref))
    info, out = decode_file(path, targets, threads=threads)
    assert info.codec in videoproc.video.skip.NONREF_SKIP_CODECS
    assert out.indices == targets
    for slot, target in enumerate(targets):
        assert np.array_equal(out.frames[slot], ref[target]), f"frame {target} differs from the CLI's"
    assert out.stats.frames_decoded < keyframe_bound(targets, info.keyframes)


def test_skipping_halves_a_long_gop_walk(clip_factory, monkeypatch):
    path = clip_factory(LONG_GOP)  # keyframes at 0, 100, 200; x264 B-frames
    targets = [99, 199, 249]
    info, out = decode_file(path, targets)
    _, full = decode_without_skipping(monkeypatch, path, targets)
    assert full.stats.frames_decoded == keyframe_bound(targets, info.keyframes) == 250
    assert out.stats.frames_decoded <= 0.7 * full.stats.frames_decoded
    assert np.array_equal(out.frames, full.frames)


def test_hevc_open_gop_leading_frames_with_skipping(clip_factory):
    path = clip_factory(HEVC_OPEN_GOP)
    ref = ffmpeg_frames(path)
    for targets in ([22, 23], [24, 49], [10, 35, 60, 85]):
        _, out = decode_file(path, targets)
        for slot, target in enumerate(targets):
            assert np.array_equal(out.frames[slot], ref[target]), f"frame {target}"


def test_a_damaged_target_still_gets_the_nearest_earlier_decodable_frame(monkeypatch):
    # Skipped frames are never candidates: the decoder walks the interval again without skipping,
    # so the substitute is the one a full decode would pick.
    path = os.path.join(REAL_DIR, "corrupted.mp4")
    _, every = decode_without_skipping(monkeypatch, path)
    bad = [t for t, i in enumerate(every.indices) if i != t]
    assert bad
    targets = sorted({0, bad[0], bad[0] + 7, 45})
    _, plain = decode_without_skipping(monkeypatch, path, targets)
    _, skipping = decode_file(path, targets)
    assert skipping.indices == plain.indices
    assert skipping.indices[targets.index(bad[0])] < bad[0]
    assert np.array_equal(skipping.frames, plain.frames)
    ref = cli_frames(path, input_args=("-threads", "1"))
    assert np.array_equal(skipping.frames[0], ref[0])


def test_keyframe_mode_and_other_codecs_decode_every_frame_they_meet():
    path = os.path.join(REAL_DIR, "no_duration.webm")  # VP9: libvpx's skip_frame is not per packet
    info, out = decode_file(path, [0, 30, 60])
    assert info.codec not in videoproc.video.skip.NONREF_SKIP_CODECS
    assert out.stats.frames_decoded == keyframe_bound([0, 30, 60], info.keyframes)


# -- the policy on its own --------------------------------------------------------------------


def packet(pts):
    return SimpleNamespace(pts=pts)


def test_skip_frame_changes_only_when_the_decision_does():
    context = SimpleNamespace(skip_frame="DEFAULT")
    skipper = NonReferenceSkipper(context, codec="h264")
    skipper.before(packet(0))
    assert context.skip_frame == "DEFAULT"  # off until told what to keep
    skipper.keep_only([30, 60])
    seen = []
    for pts in (0, 10, 20, 30, None, 40, 60, 70):
        skipper.before(packet(pts))
        seen.append(context.skip_frame)
    # A packet without a timestamp cannot be matched to a target, so it is always decoded.
    assert seen == ["NONREF", "NONREF", "NONREF", "DEFAULT", "DEFAULT", "NONREF", "DEFAULT", "NONREF"]
    assert skipper.packets_skippable == 5
    assert skipper.stop() is True and context.skip_frame == "DEFAULT"
    assert skipper.stop() is False  # once only: a second failure does not walk again
    skipper.before(packet(70))
    assert context.skip_frame == "DEFAULT"


@pytest.mark.parametrize(("codec", "keep"), [("vp9", [1]), ("libdav1d", [1]), ("h264", None)])
def test_skipper_is_inactive_where_it_cannot_help(codec, keep):
    context = SimpleNamespace(skip_frame="DEFAULT")
    skipper = NonReferenceSkipper(context, codec=codec)
    if keep is not None:
        skipper.keep_only(keep)
    skipper.before(packet(5))
    assert context.skip_frame == "DEFAULT"
    assert skipper.stop() is False


def test_nothing_to_skip_means_no_second_walk():
    context = SimpleNamespace(skip_frame="DEFAULT")
    skipper = NonReferenceSkipper(context, codec="hevc")
    skipper.keep_only([0, 1, 2])
    for pts in (0, 1, 2):
        skipper.before(packet(pts))
    assert context.skip_frame == "DEFAULT" and skipper.stop() is False
