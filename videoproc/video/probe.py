"""What a video really holds: its frames' timestamps in presentation order and where keyframes are.

Headers lie or say nothing (`stream.frames` is 0 for Matroska, some files have no duration at
all), so the frame count comes from the stream's packets, never from the header. A demux-only
scan costs about 12 µs a packet, a small fraction of decoding even one keyframe interval. A scan
stops with a failed row past `max_frames` packets (the frame budget of --max-alloc): a few
megabytes of MP4 tables can point a million samples at the same bytes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Literal

import av

from videoproc.common.errors import VideoError
from videoproc.common.memory import DEFAULT_MAX_FRAMES, PACKET_OVERHEAD_BYTES, too_many_frames


@dataclass(frozen=True, kw_only=True)
class VideoProbe:
    """The first video stream of a container.

    pts: presentation timestamps (stream time base) sorted, one per frame; frame k is pts[k].
    keyframes: presentation indices of the frames a decoder can start from.
    source: "scan" (every packet read) or "index" (container tables, checked while decoding).
    duration: seconds from the first frame's start to the last frame's end.
    width, height: coded size in pixels (before any display rotation).
    """

    stream_index: int
    codec: str
    pix_fmt: str
    width: int
    height: int
    time_base: Fraction
    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    duration: float
    container_format: str
    source: Literal["scan", "index"] = "scan"

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    @cached_property
    def timestamps(self) -> list[float]:
        # Integer multiply then one true division: the same float as Fraction arithmetic gives
        # (a correctly rounded quotient), at a tenth of the cost on long videos.
        num, den = self.time_base.numerator, self.time_base.denominator
        return [p * num / den for p in self.pts]

    @property
    def fps(self) -> float:
        """Average frames per second over the real duration (VFR-safe, unlike the header rate)."""
        return self.num_frames / self.duration if self.duration > 0 else 0.0


def first_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "none"
        raise VideoError(f"no video stream in the container (streams found: {kinds})")
    return container.streams.video[0]


def check_not_still_image(container: av.container.InputContainer) -> None:
    """FFmpeg opens a PNG or JPEG as a one-frame video; a manifest row pointing at one is a mistake
    to report, not a clip to repeat 16 times. Animated formats (GIF, APNG, WebP) have their own
    demuxers and stay videos."""
    name = container.format.name
    if name == "image2" or name.endswith("_pipe"):
        raise VideoError(
            f"this is a still image ({name.removesuffix('_pipe')}), not a video; point the manifest "
            "row at a video file"
        )


def probe(container: av.container.InputContainer, *, max_frames: int = DEFAULT_MAX_FRAMES) -> VideoProbe:
    """Scan the packets of the first video stream (no decoding) and build its timeline; VideoError
    past `max_frames` packets."""
    return probe_keeping_packets(container, max_bytes=0, max_frames=max_frames)[0]


def probe_keeping_packets(
    container: av.container.InputContainer, *, max_bytes: int, max_frames: int = DEFAULT_MAX_FRAMES
) -> tuple[VideoProbe, list[av.Packet] | None]:
    """probe(), also returning the stream's packets in demux order when they total at most
    `max_bytes` (payload plus PACKET_OVERHEAD_BYTES each), so that decoding replays them instead of
    seeking back and reading the file again. None (and the container rewound) when they are larger."""
    check_not_still_image(container)
    stream = first_video_stream(container)
    entries, packets = _scan_packets(container, stream, max_bytes=max_bytes, max_frames=max_frames)
    if not entries:
        raise VideoError("the video stream has no frames (zero packets with a timestamp)")
    return timeline_probe(container, stream, entries, source="scan"), packets


def timeline_probe(
    container, stream, entries: list[tuple[int, bool, int]], *, source: Literal["scan", "index"]
) -> VideoProbe:
    """A probe from (pts, is_keyframe, duration) per frame, in any order."""
    entries = sorted(_drop_duplicate_pts(entries))
    return VideoProbe(
        stream_index=stream.index,
        codec=stream.codec_context.name,
        pix_fmt=stream.codec_context.pix_fmt or "unknown",
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        time_base=Fraction(stream.time_base),
        pts=tuple(e[0] for e in entries),
        keyframes=tuple(i for i, e in enumerate(entries) if e[1]) or (0,),
        duration=_duration(entries, Fraction(stream.time_base)),
        container_format=container.format.name,
        source=source,
    )


def _scan_packets(
    container, stream, *, max_bytes: int, max_frames: int
) -> tuple[list[tuple[int, bool, int]], list | None]:
    """(pts, is_keyframe, duration) per frame-carrying packet of `stream`, in decode order, and the
    packets themselves (the end-of-stream marker left out) while they fit in `max_bytes`."""
    entries = []
    packets: list | None = [] if max_bytes > 0 else None
    kept = scanned = 0
    try:
        for packet in container.demux(stream):
            scanned += 1
            if scanned > max_frames:
                raise VideoError(too_many_frames(max_frames, what="the video stream has more than", limit=max_frames),
                                 kind="video.too_large")
            if packets is not None and packet.size:
                kept += packet.size + PACKET_OVERHEAD_BYTES
                if kept > max_bytes:
                    packets = None
                else:
                    packets.append(packet)
            ts = packet.pts if packet.pts is not None else packet.dts
            # Packets outside an MP4 edit list are decoded for reference but never shown.
            if packet.size == 0 or ts is None or packet.is_discard:
                continue
            entries.append((ts, bool(packet.is_keyframe), packet.duration or 0))
    except av.error.FFmpegError:
        # A damaged tail ends the scan; frames up to it are still real and decodable.
        if not entries:
            raise
    if entries and packets is None:
        container.seek(0, stream=stream, backward=True)
    return entries, packets


def _drop_duplicate_pts(entries: list[tuple[int, bool, int]]) -> list[tuple[int, bool, int]]:
    # Two packets with one pts would make "frame k" ambiguous; decoders output the later one.
    seen: dict[int, tuple[int, bool, int]] = {}
    for entry in entries:
        seen[entry[0]] = entry
    return list(seen.values())


def _duration(sorted_entries: list[tuple[int, bool, int]], time_base: Fraction) -> float:
    first, last = sorted_entries[0][0], sorted_entries[-1][0]
    last_duration = sorted_entries[-1][2]
    if last_duration <= 0:
        gaps = [b[0] - a[0] for a, b in zip(sorted_entries, sorted_entries[1:], strict=False)]
        last_duration = statistics.median(gaps) if gaps else 0
    return float((last - first + last_duration) * time_base)
