"""Decoding the packets the probe kept: the same frames as reading the file again, without reading it."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

from tests.conftest import REAL_DIR
from tests.helpers import LONG_GOP, decode_file, named_clip
from videoproc.source import open_uri
from videoproc.source.options import SourceOptions
from videoproc.video.decode import FrameDecoder
from videoproc.video.packets import KEEP_PACKETS_BYTES
from videoproc.video.probe import probe_keeping_packets
from videoproc.video.resize import FrameConverter, plan_resize

CASES = [
    ("real/av1_video.mkv", [0, 40, 41, 124]),
    ("real/no_duration.webm", [73, 2, 36]),
    ("real/big_buck_bunny_432_433.webm", [5, 5, 23]),
    ("generated/vfr.mkv", [0, 13, 39]),
    ("real/corrupted.mp4", [0, 29, 30, 31, 49]),  # a damaged packet on the way
    ("long_gop", [99, 100, 199, 249, 5]),  # seeks to keyframes, forward and back
    ("hevc_open_gop", [22, 23, 49, 24, 99]),  # leading frames: seeks that land past their target
]


@pytest.mark.parametrize("seek_mode", ["exact", "keyframe"])
@pytest.mark.parametrize(("name", "targets"), CASES)
def test_kept_packets_give_the_same_frames_as_the_file(name, targets, seek_mode, clip_factory, sample_clips):
    path = named_clip(name, clip_factory)
    _, kept = decode_file(path, targets, seek_mode=seek_mode, keep_packets=True)
    _, read = decode_file(path, targets, seek_mode=seek_mode)
    assert kept.indices == read.indices
    assert kept.timestamps == read.timestamps
    assert np.array_equal(kept.frames, read.frames)
    assert kept.stats.decode_errors == read.stats.decode_errors


def test_kept_packets_are_not_read_again(clip_factory):
    # Seeks included: every byte decoding needs was read by the probe.
    path = clip_factory(LONG_GOP)
    with open_uri(path, options=SourceOptions()) as reader, av.open(reader, metadata_errors="ignore") as container:
        info, packets = probe_keeping_packets(container, max_bytes=KEEP_PACKETS_BYTES)
        assert packets is not None and len(packets) == info.num_frames
        read_by_probe = reader.bytes_read
        plan = plan_resize(info.width, info.height, size=(32, 32), mode="stretch")
        decoder = FrameDecoder(container, info, strict=False, autorotate=True, threads=1, packets=packets,
                               make_converter=lambda rotation: FrameConverter(plan, rotation=rotation))
        out = decoder.decode([150, 20, 240])
        assert out.indices == [150, 20, 240] and out.stats.seeks >= 2
        assert reader.bytes_read == read_by_probe


def test_packets_over_the_budget_are_dropped_and_the_file_rewound():
    path = os.path.join(REAL_DIR, "no_duration.webm")
    with av.open(path, metadata_errors="ignore") as container:
        info, packets = probe_keeping_packets(container, max_bytes=10_000)
        assert packets is None
        first = next(container.demux(container.streams.video[0]))
        assert first.is_keyframe and first.pts == info.pts[0]  # back at the start for the decoder
    with av.open(path, metadata_errors="ignore") as container:
        _, packets = probe_keeping_packets(container, max_bytes=KEEP_PACKETS_BYTES)
        assert packets is not None and len(packets) == info.num_frames
