"""MP4 "table bombs": small valid MP4s whose sample tables claim billions of samples.

Each bomb is a real clip made by the FFmpeg CLI with one number in one sample-table box rewritten
in place, so the file stays a few kilobytes and parses as before everywhere else:

- stts / ctts: the first run's sample count (a run-length table: (count, delta) pairs).
- stsz: a constant sample size of 1 byte and a sample count, which needs no per-sample table, with
  the chunk table (stsc) putting all those samples in the first chunk, so FFmpeg indexes them all.
- stss: the entry count of the keyframe table (the entries themselves are not there).

The byte layouts are ISO/IEC 14496-12 (8.6.1.2 stts, 8.6.1.3 ctts, 8.7.3.2 stsz, 8.6.2 stss): a
full box header (size, type, version and flags: 12 bytes), then the fields patched here.
"""

from __future__ import annotations

import struct
from typing import Literal

from videoproc.common.testmedia import Clip, _x264

Table = Literal["stts", "ctts", "stsz", "stss"]
TABLES: tuple[Table, ...] = ("stts", "ctts", "stsz", "stss")
BILLIONS = 2**32 - 1  # the largest count a 32-bit field can claim

# 2 s of 64x48 H.264 with B-frames, so the track has a ctts box; keyframes every 10 frames, so
# it has an stss box.
BOMB_BASE = Clip(name="bomb_base.mp4", args=_x264(2, "64x48", 10, 10, "-bf", "2"))

_STBL = (b"moov", b"trak", b"mdia", b"minf", b"stbl")
# Byte offset, from the start of the box, of the 32-bit field each bomb rewrites.
_COUNT_FIELD = {"stts": 16, "ctts": 16, "stsz": 16, "stss": 12}


def make_bomb(base: bytes, table: Table, count: int = BILLIONS) -> bytes:
    """`base` (an MP4 whose first track is its video) with `table`'s sample count set to `count`."""
    data = bytearray(base)
    start = find_box(data, (*_STBL, table.encode()))
    if table == "stsz":
        struct.pack_into(">I", data, start + 12, 1)  # constant size: one byte per sample, no table
        stsc = find_box(data, (*_STBL, b"stsc"))
        struct.pack_into(">I", data, stsc + 20, count)  # the first chunk's samples_per_chunk
    struct.pack_into(">I", data, start + _COUNT_FIELD[table], count)
    return bytes(data)


def find_box(data: bytes | bytearray, path: tuple[bytes, ...]) -> int:
    """Offset of the first box along `path` (e.g. moov/trak/.../stts); KeyError when absent."""
    start, end = 0, len(data)
    for depth, kind in enumerate(path):
        pos = start
        while pos + 8 <= end:
            size, box = struct.unpack_from(">I4s", data, pos)
            if box == kind:
                break
            pos += size
        else:
            raise KeyError(f"no {b'/'.join(path[: depth + 1]).decode()} box")
        if depth == len(path) - 1:
            return pos
        start, end = pos + 8, pos + size
    raise KeyError("empty path")
