"""Where the decoder's packets come from: the file, or the packets the probe already read.

A probe that scans packets (every container without a usable index: Matroska, WebM, MPEG-TS...)
has read the whole stream once. When its packets are small enough to keep, decoding replays them
from memory: no seek back, no second pass over the file, and a "seek" is a jump to the keyframe's
own packet. On a short clip that is a few percent of its cost.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import av

Packet = Any  # av.Packet

# Packets kept per video at most (compressed bytes): a short clip's whole stream, never a film's.
KEEP_PACKETS_BYTES = 16 * 2**20


class ContainerPackets:
    """Packets demuxed from the file; a seek is the container's own (keyframe at or before)."""

    def __init__(self, container: av.container.InputContainer, stream) -> None:
        self.container = container
        self.stream = stream

    def from_start(self) -> Iterator[Packet]:
        """The packets of a container that has not been read since it opened or rewound."""
        return self.container.demux(self.stream)

    def seek(self, pts: int | None) -> Iterator[Packet]:
        """Packets from the keyframe at or before `pts`, or from the start of the stream (None)."""
        if pts is None:
            self.container.seek(0, backward=True, any_frame=False)
        else:
            self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        return self.container.demux(self.stream)


class KeptPackets:
    """Packets kept in memory by the probe, replayed in demux order with an end-of-stream packet."""

    def __init__(self, packets: Sequence[Packet], stream) -> None:
        self.packets = packets
        self.stream = stream
        self._keyframe_positions: dict[int, int] | None = None

    def from_start(self) -> Iterator[Packet]:
        return self._replay(0)

    def seek(self, pts: int | None) -> Iterator[Packet]:
        # What a container seek does to the decoder: drop its queued frames and references.
        self.stream.codec_context.flush_buffers()
        return self._replay(0 if pts is None else self._position_of(pts))

    def _position_of(self, pts: int) -> int:
        if self._keyframe_positions is None:
            self._keyframe_positions = {
                _timestamp(p): i for i, p in enumerate(self.packets) if p.is_keyframe and _timestamp(p) is not None
            }
        # The probe's keyframes are these packets' timestamps; anything else starts over (slower,
        # never wrong).
        return self._keyframe_positions.get(pts, 0)

    def _replay(self, start: int) -> Iterator[Packet]:
        yield from itertools.islice(self.packets, start, None)
        end = av.Packet()  # an empty packet tells the decoder to give out the frames it holds
        end.stream = self.stream
        yield end


def _timestamp(packet: Packet) -> int | None:
    # The probe's rule: a packet without a presentation timestamp is placed by its decode one.
    return packet.pts if packet.pts is not None else packet.dts
