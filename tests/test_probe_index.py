"""The MP4 fast path: a timeline from the sample tables, the same as a packet scan, and checked."""

from __future__ import annotations

import dataclasses
import os

import av
import pytest

import videoproc.video.process
from tests.helpers import named_clip
from videoproc.source.options import SourceOptions
from videoproc.video.mp4index import video_composition_offsets
from videoproc.video.options import VideoOptions
from videoproc.video.probe import probe
from videoproc.video.probe_index import probe_from_index
from videoproc.video.process import VideoTask, process_video

MP4S = ["real/carphone_pristine.mp4", "real/h264_10bits.mp4", "real/h265_video.mp4", "real/nasa_13013.mp4",
        "real/video_90.mov", "generated/testsrc_h264_3s.mp4", "generated/rotated_90.mp4", "long_gop",
        "hevc_open_gop"]


@pytest.mark.parametrize("name", MP4S)
def test_the_tables_give_the_scans_timeline(name, clip_factory, sample_clips):
    path = named_clip(name, clip_factory)
    with open(path, "rb") as f:
        offsets = video_composition_offsets(f)
    assert offsets is not None
    with av.open(path) as container:
        fast = probe_from_index(container, offsets, file_size=os.path.getsize(path))
    with av.open(path) as container:
        scanned = probe(container)
    assert fast is not None and fast.source == "index"
    assert (fast.pts, fast.keyframes, fast.duration) == (scanned.pts, scanned.keyframes, scanned.duration)


def row(path: str):
    task = VideoTask(row=0, id="clip", uri=path)
    return process_video(task, video=VideoOptions(num_frames=8, size=(32, 32)), source=SourceOptions(), threads=1)


def shift_all(pts: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(p + 1 for p in pts)  # no frame has any of these timestamps


def shift_second(pts: tuple[int, ...]) -> tuple[int, ...]:
    # One unsampled frame off by a tick: caught if it is decoded, harmless if it is skipped.
    return (pts[0], pts[1] + 1, *pts[2:])


@pytest.mark.parametrize("lie", [shift_all, shift_second])
@pytest.mark.parametrize("name", ["long_gop", "real/nasa_13013.mp4", "hevc_open_gop"])
def test_a_lying_table_is_caught_while_decoding_and_the_scan_takes_over(name, lie, clip_factory, monkeypatch):
    path = named_clip(name, clip_factory)
    honest = row(path)
    assert 1 not in honest.frame_indices
    calls = []

    def lying(container, offsets, *, file_size, max_frames):
        calls.append(offsets)
        info = probe_from_index(container, offsets, file_size=file_size, max_frames=max_frames)
        return dataclasses.replace(info, pts=lie(info.pts))

    monkeypatch.setattr(videoproc.video.process, "probe_from_index", lying)
    result = row(path)
    assert calls, "the MP4 tables were not used"
    assert result.status == "ok", result.error
    assert (result.frame_indices, result.timestamps) == (honest.frame_indices, honest.timestamps)
    assert result.frames == honest.frames
