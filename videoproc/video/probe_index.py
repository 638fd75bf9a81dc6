"""The probe's fast path for MP4/MOV: the timeline from the container's sample tables alone.

Decode timestamps and keyframe flags come from FFmpeg's index, composition offsets from the `ctts`
box (videoproc.video.mp4index), so no media data is read. The result is checked as frames are decoded:
a decoded timestamp missing from this timeline raises TimelineMismatch, and the caller falls back
to the packet scan, so a file this path misreads costs time, never a wrong frame. The index is
counted before it is read: one longer than the frame budget of --max-alloc fails the row.
"""

from __future__ import annotations

from videoproc.common.errors import VideoError
from videoproc.common.memory import DEFAULT_MAX_FRAMES, too_many_frames
from videoproc.video.mp4index import OffsetRuns
from videoproc.video.probe import VideoProbe, first_video_stream, timeline_probe


class TimelineMismatch(Exception):
    """A decoded frame's timestamp is not in the index-built timeline."""


def probe_from_index(
    container, runs: OffsetRuns, *, file_size: int | None, max_frames: int = DEFAULT_MAX_FRAMES
) -> VideoProbe | None:
    """Timeline of the first video stream from its index and composition offsets, or None.
    Raises VideoError when the index lists more than `max_frames` samples (checked before any
    per-sample structure is built)."""
    stream = first_video_stream(container)
    count = len(stream.index_entries)
    if count > max_frames:
        raise VideoError(too_many_frames(count, what="the MP4's index lists", limit=max_frames), kind="video.too_large")
    if not count or (runs.total and runs.total != count):
        return None
    entries = list(stream.index_entries)
    if file_size is not None and any(e.pos + e.size > file_size for e in entries if e.pos >= 0):
        return None  # a cut-off file whose index lists samples past its end: count what is there
    offsets = runs.per_sample().tolist() if runs.total else [0] * count
    # FFmpeg shifts decode timestamps so that negative composition offsets never put a
    # presentation timestamp before its decode timestamp.
    shift = max(0, -min(offsets))
    rows = []
    for entry, offset in zip(entries, offsets, strict=True):
        if entry.is_discard:
            continue
        rows.append((entry.timestamp + offset + shift, bool(entry.is_keyframe), 0))
    if not rows:
        return None
    return timeline_probe(container, stream, rows, source="index")


def check_timestamp(probe: VideoProbe, index: int, ts: int) -> None:
    if probe.source == "index" and probe.pts[index] != ts:
        raise TimelineMismatch(
            f"decoded pts {ts} is not in the index timeline (frame {index} has {probe.pts[index]})"
        )

