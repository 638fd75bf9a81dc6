"""Decode exactly the sampled frames, at a cost that follows the frames sampled, not the video length.

For each target (in presentation order) the decoder seeks to the keyframe at or before it and
decodes forward to it, or keeps decoding forward when the next target is no further away than a
seek would be, so no frame is decoded twice. A seek can land past its target (HEVC open GOPs,
B-frames, MP4 indexes in decode order); that is detected from the first decoded timestamp and
corrected by seeking to an earlier keyframe, never by returning a neighbouring frame.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np

from videoproc.common.errors import VideoError
from videoproc.video.options import SeekMode
from videoproc.video.packets import ContainerPackets, KeptPackets
from videoproc.video.probe import VideoProbe
from videoproc.video.probe_index import check_timestamp
from videoproc.video.sample import nearest_keyframes
from videoproc.video.skip import NonReferenceSkipper

Frame = Any  # av.VideoFrame; kept loose so the converter can be any callable

# Frame threads pay for themselves only on enough work: each holds a frame of latency and its own
# copy of the decoder state. Measured on 2 idle cores, every frame of generated H.264 and VP9
# decoded: two threads were 2-48 % slower than one on 176x144 and 320x180 VP9 at any length, and
# on 5-10 frames of 640x360; 1.2-1.8x faster from 640x360 over 30 frames and from 1280x720 up.
MIN_THREADED_PIXELS = 100_000  # per picture
MIN_THREADED_WORK = 4_000_000  # pixels per picture x frames to decode


def decoder_threads(available: int, *, width: int, height: int, frames: int) -> int:
    """The decoding threads worth giving one stream, out of `available` (--decoder-threads or its
    default), for `frames` frames to decode."""
    pixels = width * height
    return available if pixels >= MIN_THREADED_PIXELS and pixels * frames >= MIN_THREADED_WORK else 1


@dataclass(kw_only=True)
class DecodeStats:
    """Counters for one video: frames the decoder produced, seeks made, bad packets met."""

    frames_decoded: int = 0
    seeks: int = 0
    decode_errors: int = 0
    substituted: int = 0


@dataclass(frozen=True, kw_only=True)
class DecodedFrames:
    """The returned frames (T, H, W, 3 uint8) with the real index and timestamp of each."""

    frames: np.ndarray
    buffer: bytearray  # the memory of `frames`, C-order
    indices: list[int]
    timestamps: list[float]
    rotation: int
    stats: DecodeStats = field(default_factory=DecodeStats)


class FrameDecoder:
    """Decodes chosen presentation indices of one stream of an open container.

    `make_converter(rotation)` is called once, with the clockwise display rotation of the first
    decoded frame, and returns the frame-to-array function used for every returned frame.
    `packets`, the stream's packets as the probe read them, are decoded instead of the file's.
    """

    def __init__(
        self,
        container: av.container.InputContainer,
        probe: VideoProbe,
        *,
        strict: bool,
        autorotate: bool,
        threads: int,
        make_converter: Callable[[int], Callable[[Frame], np.ndarray]],
        packets: Sequence[av.Packet] | None = None,
    ) -> None:
        self.container = container
        self.probe = probe
        self.stream = container.streams[probe.stream_index]
        self._source = (
            KeptPackets(packets, self.stream) if packets is not None else ContainerPackets(container, self.stream)
        )
        self.stream.thread_type = "AUTO" if threads > 1 else "SLICE"
        self.stream.thread_count = threads
        self.strict = strict
        self.autorotate = autorotate
        self.make_converter = make_converter
        self.stats = DecodeStats()
        self._convert: Callable[[Frame], np.ndarray] | None = None
        self._rotation = 0
        self._frames: Iterator[tuple[int, Frame]] | None = None
        self._pending: tuple[int, Frame] | None = None
        self._position = -1  # presentation index of the last frame taken from the decoder
        self._last_good: tuple[int, Frame] | None = None
        # Keyframe mode decodes every frame it meets; exact mode names its targets in decode().
        self._skipper = NonReferenceSkipper(self.stream.codec_context, codec=probe.codec)

    def decode(self, targets: Sequence[int], *, seek_mode: SeekMode = "exact") -> DecodedFrames:
        output = _Output(targets)
        wanted = sorted(output.slots)
        if seek_mode == "exact":
            self._skipper.keep_only(self.probe.pts[t] for t in wanted)
        found = self._decode_keyframes(wanted) if seek_mode == "keyframe" else map(self._decode_exact, wanted)
        for target, (index, frame) in zip(wanted, found, strict=True):
            # Converted and copied into place at once: the converter's frame goes back to FFmpeg's
            # buffer pool before the next one is made, so a clip's output costs one allocation.
            output.put(target, index, self._to_array(frame))
        return output.finish(self.probe.timestamps, rotation=self._rotation, stats=self.stats)

    # -- exact mode -------------------------------------------------------------------------

    def _decode_exact(self, target: int) -> tuple[int, Frame]:
        keyframe = self._keyframe_before(target)
        if self._frames is None and keyframe <= self.probe.keyframes[0]:
            self._start_without_seek(target, keyframe)
        elif self._frames is None or target <= self._position or keyframe > self._position + 1:
            self._seek_to(target, keyframe)
        found = self._walk_to(target)
        if found is None and self._skipper.stop():
            # A skipped frame may be what this target needs: the nearest earlier frame when the
            # target itself is damaged, or the frame an index-built timeline got wrong (decoding
            # it raises TimelineMismatch). Walk the interval again, decoding everything.
            self._seek_to(target, keyframe)
            found = self._walk_to(target)
        return found if found is not None else self._substitute(target)

    def _walk_to(self, target: int) -> tuple[int, Frame] | None:
        """Decode forward to `target`; None when a later frame (or the end) comes first."""
        # A plain loop over _next_frame rather than the _forward generator: this runs once per
        # decoded frame, and a generator layer per frame is measurable on short clips.
        while (item := self._next_frame()) is not None:
            index, frame = item
            self._position = index
            if index > target:
                self._unread(index, frame)
                return None
            self._last_good = item
            if index == target:
                return item
        return None

    def _seek_to(self, target: int, keyframe: int) -> None:
        """Seek so that decoding starts at or before `target`, correcting seeks that overshoot."""
        candidates = [k for k in self.probe.keyframes if k <= keyframe][::-1] or [0]
        for start in candidates:
            self._start_at(start)
            first = self._peek()
            if first is None or first[0] <= target:
                return
        self._start_at(None)  # the beginning of the stream, no index needed

    def _start_without_seek(self, target: int, keyframe: int) -> None:
        """A fresh container is at the start of the stream: decode from there without a seek."""
        self._frames = self._decode_packets(self._source.from_start())
        first = self._peek()
        if first is not None and first[0] > target:
            self._seek_to(target, keyframe)

    def _start_at(self, keyframe: int | None) -> None:
        self.stats.seeks += 1
        packets = self._source.seek(None if keyframe is None else self.probe.pts[keyframe])
        self._frames = self._decode_packets(packets)
        self._pending = None
        self._position = -1

    def _unread(self, index: int, frame: Frame) -> None:
        # The frame past a target is kept for the next target; only what comes before it has been
        # consumed, so a next target equal to it (after a frame that failed to decode) is served
        # from here instead of triggering a seek back to the keyframe.
        self._pending = (index, frame)
        self._position = index - 1

    def _peek(self) -> tuple[int, Frame] | None:
        item = self._next_frame()
        self._pending = item
        return item

    def _forward(self) -> Iterator[tuple[int, Frame]]:
        # Pulls with next() rather than `yield from`: this generator is dropped after every target,
        # and closing a delegating generator would close the shared packet decoder with it.
        while (item := self._next_frame()) is not None:
            self._position = item[0]
            yield item

    def _next_frame(self) -> tuple[int, Frame] | None:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        return next(self._frames, None) if self._frames is not None else None

    def _decode_packets(self, packets: Iterable[av.Packet]) -> Iterator[tuple[int, Frame]]:
        """Frames in presentation order with their indices; bad packets are counted and skipped."""
        stats, skip, index_of = self.stats, self._skipper.before, self._index_of  # per packet: locals
        for packet in packets:
            skip(packet)
            try:
                frames = packet.decode()
            except av.error.MemoryError:
                raise  # the worker's memory ceiling, not a bad packet: fail the row, never conceal
            except av.error.FFmpegError as exc:
                self._record_error(packet, exc)
                continue
            for frame in frames:
                stats.frames_decoded += 1
                yield index_of(frame), frame

    def _record_error(self, packet, exc: Exception) -> None:
        self.stats.decode_errors += 1
        if self.strict:
            where = f"{float(packet.pts * self.probe.time_base):.3f}s" if packet.pts is not None else "?"
            raise VideoError(f"decode error at t={where} (strict mode): {exc}", kind="video.decode") from exc

    def _substitute(self, target: int) -> tuple[int, Frame]:
        """Lenient mode: a target that could not be decoded becomes the nearest earlier good frame."""
        when = f"{self.probe.timestamps[target]:.3f}s"
        if self.strict:
            raise VideoError(f"frame {target} at t={when} could not be decoded (strict mode)", kind="video.decode")
        if self._last_good is None or self._last_good[0] > target:
            raise VideoError(f"frame {target} at t={when} and every frame before it failed to decode",
                             kind="video.decode")
        self.stats.substituted += 1
        return self._last_good

    # -- keyframe mode ----------------------------------------------------------------------

    def _decode_keyframes(self, wanted: list[int]) -> Iterator[tuple[int, Frame]]:
        """Approximate mode: the keyframe nearest each target, one seek and one frame each."""
        for target, keyframe in zip(wanted, nearest_keyframes(wanted, self.probe.keyframes), strict=True):
            self._start_at(keyframe)
            first = next(((i, f) for i, f in self._forward() if i >= keyframe), None)
            yield first if first is not None else self._substitute(target)

    # -- helpers ----------------------------------------------------------------------------

    def _keyframe_before(self, target: int) -> int:
        keyframes = self.probe.keyframes
        k = bisect.bisect_right(keyframes, target) - 1
        return keyframes[k] if k >= 0 else 0

    def _index_of(self, frame: Frame) -> int:
        ts = frame.pts
        if ts is None and (ts := frame.dts) is None:
            return self._position + 1
        timeline = self.probe.pts
        index = max(bisect.bisect_right(timeline, ts) - 1, 0)
        if timeline[index] != ts:
            check_timestamp(self.probe, index, ts)
        return index

    def _to_array(self, frame: Frame) -> np.ndarray:
        if self._convert is None:
            self._rotation = (-int(frame.rotation or 0)) % 360 if self.autorotate else 0
            self._convert = self.make_converter(self._rotation)
        return self._convert(frame)



class _Output:
    """The (T, H, W, 3) result filled slot by slot; a target asked for twice fills both slots."""

    def __init__(self, targets: Sequence[int]) -> None:
        self.slots: dict[int, list[int]] = {}
        for slot, target in enumerate(targets):
            self.slots.setdefault(target, []).append(slot)
        self.count = len(targets)
        self.indices = [0] * self.count
        self.buffer: bytearray | None = None
        self.frames: np.ndarray | None = None

    def put(self, target: int, index: int, array: np.ndarray) -> None:
        if self.frames is None:
            # A bytearray from the start, so the row's bytes are these bytes: one copy per slot.
            self.buffer = bytearray(self.count * array.size)
            self.frames = np.frombuffer(self.buffer, dtype=np.uint8).reshape(self.count, *array.shape)
        for slot in self.slots[target]:
            self.frames[slot] = array
            self.indices[slot] = index

    def finish(self, times: Sequence[float], *, rotation: int, stats: DecodeStats) -> DecodedFrames:
        return DecodedFrames(
            frames=self.frames,
            buffer=self.buffer,
            indices=self.indices,
            timestamps=[times[i] for i in self.indices],
            rotation=rotation,
            stats=stats,
        )
