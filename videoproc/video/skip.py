"""Frames nothing needs: non-reference pictures that are not sampled are left undecoded.

A picture that no other picture predicts from (H.264 `nal_ref_idc` 0, HEVC sub-layer
non-reference pictures) changes nothing that is decoded after it, so when it is not a target it
can be skipped and every later frame still comes out bit for bit the same. x264's and x265's
default settings make about half of all frames such B-frames, so exact mode decodes about half of
each keyframe interval it walks through.

The choice is made per packet through the decoder's `skip_frame` setting, which FFmpeg reads when
the packet is sent (frame threads copy it at submission). Only decoders that honour it per packet
are listed: libdav1d, for one, reads it once when it opens.
"""

from __future__ import annotations

from collections.abc import Iterable

NONREF_SKIP_CODECS = frozenset({"h264", "hevc"})


class NonReferenceSkipper:
    """Sets `skip_frame` before each packet: skip non-reference pictures unless the packet's
    timestamp is one to keep. Off until `keep_only` is called, and for codecs outside
    NONREF_SKIP_CODECS."""

    def __init__(self, codec_context, *, codec: str) -> None:
        self.context = codec_context
        self.codec = codec
        self.keep: frozenset[int] | None = None
        self.skipping = False
        self.packets_skippable = 0  # packets sent while skipping was on

    def keep_only(self, pts: Iterable[int]) -> None:
        """From now on, skip every non-reference picture whose timestamp is not in `pts`."""
        if self.codec in NONREF_SKIP_CODECS:
            self.keep = frozenset(pts)

    def before(self, packet) -> None:
        if self.keep is None:
            return
        skip = packet.pts is not None and packet.pts not in self.keep
        if skip != self.skipping:
            self.context.skip_frame = "NONREF" if skip else "DEFAULT"
            self.skipping = skip
        self.packets_skippable += skip

    def stop(self) -> bool:
        """Decode every frame from now on; True if it was on and any packet could have been skipped."""
        was_skipping = self.keep is not None and self.packets_skippable > 0
        self.keep = None
        if self.skipping:
            self.context.skip_frame = "DEFAULT"
            self.skipping = False
        return was_skipping
