"""Composition offsets of the first video track of an MP4/MOV file, read from its sample tables.

FFmpeg's index gives every sample's decode timestamp and keyframe flag without reading the media
data, but not its presentation timestamp, which also needs the `ctts` table. Reading that table
from the `moov` box (a few kilobytes, usually) lets the probe build the exact presentation timeline
of an MP4 without the demux pass over every byte: on a remote file, sampling 16 frames then reads
only the keyframe intervals it decodes. Anything unusual (fragmented files, several edits, a track
this parser does not understand) returns None and the caller scans packets instead.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
MAX_MOOV_BYTES = 64 * 2**20


def is_iso_bmff(head: bytes) -> bool:
    """True for files that start with an `ftyp` box (MP4, MOV, 3GP, M4V...)."""
    return len(head) >= 8 and head[4:8] in (b"ftyp", b"wide", b"free", b"moov", b"mdat")


def video_composition_offsets(f: BinaryIO) -> list[int] | None:
    """Per-sample composition offsets (decode order) of the first video track, [] when it has no
    ctts box (presentation order == decode order); None when the file is not understood."""
    moov = _find_top_level(f, b"moov")
    if moov is None or _child(moov, b"mvex") is not None:  # fragmented: samples live in moofs
        return None
    for trak in _children(moov, b"trak"):
        if _handler(trak) == b"vide":
            return _offsets(trak)
    return None


def _find_top_level(f: BinaryIO, kind: bytes) -> bytes | None:
    f.seek(0)
    offset = 0
    while True:
        header = f.read(8)
        if len(header) < 8:
            return None
        size, box = struct.unpack(">I4s", header)
        head_len = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            head_len = 16
        if box == kind:
            if size == 0 or size > MAX_MOOV_BYTES:
                return None
            return f.read(size - head_len)
        if size < head_len:  # size 0 means "to the end of file": the box was not found before it
            return None
        offset += size
        f.seek(offset)


def _children(payload: bytes, kind: bytes) -> list[bytes]:
    found, pos = [], 0
    while pos + 8 <= len(payload):
        size, box = struct.unpack_from(">I4s", payload, pos)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", payload, pos + 8)[0], 16
        if size < head:
            break
        if box == kind:
            found.append(payload[pos + head : pos + size])
        pos += size
    return found


def _child(payload: bytes, kind: bytes) -> bytes | None:
    found = _children(payload, kind)
    return found[0] if found else None


def _path(payload: bytes, *kinds: bytes) -> bytes | None:
    for kind in kinds:
        if payload is None:
            return None
        payload = _child(payload, kind)
    return payload


def _handler(trak: bytes) -> bytes | None:
    hdlr = _path(trak, b"mdia", b"hdlr")
    return hdlr[8:12] if hdlr is not None and len(hdlr) >= 12 else None


def _offsets(trak: bytes) -> list[int] | None:
    stbl = _path(trak, b"mdia", b"minf", b"stbl")
    if stbl is None:
        return None
    elst = _path(trak, b"edts", b"elst")
    if elst is not None and struct.unpack_from(">I", elst, 4)[0] > 1:
        return None  # several edits reorder or repeat media; leave those to the packet scan
    ctts = _child(stbl, b"ctts")
    if ctts is None:
        return []
    version = ctts[0]
    (count,) = struct.unpack_from(">I", ctts, 4)
    fmt = ">Ii" if version == 1 else ">II"
    offsets: list[int] = []
    reader = io.BytesIO(ctts[8 : 8 + 8 * count])
    for _ in range(count):
        samples, offset = struct.unpack(fmt, reader.read(8))
        if version == 0 and offset >= 2**31:  # writers put signed values in version 0 too
            offset -= 2**32
        offsets.extend([offset] * samples)
    return offsets
