"""The probe's fast path for MP4/MOV: the timeline from the container's sample tables alone.

Decode timestamps and keyframe flags come from FFmpeg's index, composition offsets from the `ctts`
box (videoproc.mp4index), so no media data is read. The result is checked as frames are decoded:
a decoded timestamp missing from this timeline raises TimelineMismatch, and the caller falls back
to the packet scan, so a file this path misreads costs time, never a wrong frame.
"""

from __future__ import annotations

from videoproc.probe import VideoProbe, first_video_stream, timeline_probe


class TimelineMismatch(Exception):
    """A decoded frame's timestamp is not in the index-built timeline."""


def probe_from_index(container, offsets: list[int], *, file_size: int | None) -> VideoProbe | None:
    """Timeline of the first video stream from its index and composition offsets, or None."""
    stream = first_video_stream(container)
    entries = list(stream.index_entries)
    if not entries or (offsets and len(offsets) != len(entries)):
        return None
    if file_size is not None and any(e.pos + e.size > file_size for e in entries if e.pos >= 0):
        return None  # a cut-off file whose index lists samples past its end: count what is there
    # FFmpeg shifts decode timestamps so that negative composition offsets never put a
    # presentation timestamp before its decode timestamp.
    shift = max(0, -min(offsets)) if offsets else 0
    rows = []
    for k, entry in enumerate(entries):
        if entry.is_discard:
            continue
        pts = entry.timestamp + (offsets[k] + shift if offsets else 0)
        rows.append((pts, bool(entry.is_keyframe), 0))
    if not rows:
        return None
    return timeline_probe(container, stream, rows, source="index")


def check_timestamp(probe: VideoProbe, index: int, ts: int) -> None:
    if probe.source == "index" and probe.pts[index] != ts:
        raise TimelineMismatch(
            f"decoded pts {ts} is not in the index timeline (frame {index} has {probe.pts[index]})"
        )

