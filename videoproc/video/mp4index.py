"""Composition offsets of the first video track of an MP4/MOV file, read from its sample tables.

FFmpeg's index gives every sample's decode timestamp and keyframe flag without reading the media
data, but not its presentation timestamp, which also needs the `ctts` table. Reading that table
from the `moov` box (a few kilobytes, usually) lets the probe build the exact presentation timeline
of an MP4 without the demux pass over every byte: on a remote file, sampling 16 frames then reads
only the keyframe intervals it decodes. Anything unusual (fragmented files, several edits, a track
this parser does not understand) returns None and the caller scans packets instead.

The same pass bounds what the tables make FFmpeg and the probe allocate, before FFmpeg opens the
file: FFmpeg indexes every sample a track's `stsz` box counts, and a few bytes can claim billions.
Each table's entry count must fit in its box, a track's samples (`stsz`, and the run-length sums
of `stts` and `ctts`) must fit in the file, a sample taking at least one byte, and a video track
must stay within the frame budget of --max-alloc; a table that breaks a rule fails the row. Sound
tracks are spared the file-size rule for `stts` and constant-size `stsz`: QuickTime counts
compressed audio (IMA4: 64 samples in 34 bytes) in PCM samples there, and FFmpeg indexes such a
track by chunk, not by sample. Composition offsets stay run-length (count, offset) pairs until the
probe has checked their total against FFmpeg's index.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from videoproc.common.errors import VideoError
from videoproc.common.memory import DEFAULT_MAX_FRAMES, too_many_frames

MAX_MOOV_BYTES = 64 * 2**20
# Bytes per entry of the tables whose entry count (32 bits after version and flags) sizes an
# allocation in FFmpeg: time-to-sample, composition offsets, sync samples, sample-to-chunk, chunk
# offsets.
_ENTRY_BYTES = {b"stts": 8, b"ctts": 8, b"stss": 4, b"stps": 4, b"stsc": 12, b"stco": 4, b"co64": 8}
_HANDLERS = {b"vide": "video", b"soun": "sound"}
_CORRUPT = "the file is corrupt or crafted: re-encode it from its original, or drop the row"


@dataclass(frozen=True)
class OffsetRuns:
    """A `ctts` table as stored: counts[i] consecutive samples (decode order) share offsets[i].
    No runs: the track has no `ctts`, presentation order is decode order."""

    counts: np.ndarray
    offsets: np.ndarray

    @property
    def total(self) -> int:
        return int(self.counts.sum(dtype=np.uint64))

    def per_sample(self) -> np.ndarray:
        """One offset per sample; the caller bounds `total` first (8 bytes a sample)."""
        return np.repeat(self.offsets, self.counts)


NO_OFFSETS = OffsetRuns(counts=np.zeros(0, np.int64), offsets=np.zeros(0, np.int64))


def is_iso_bmff(head: bytes) -> bool:
    """True for files that start with an `ftyp` box (MP4, MOV, 3GP, M4V...)."""
    return len(head) >= 8 and head[4:8] in (b"ftyp", b"wide", b"free", b"moov", b"mdat")


def video_composition_offsets(
    f: BinaryIO, *, file_size: int | None = None, max_samples: int = DEFAULT_MAX_FRAMES
) -> OffsetRuns | None:
    """Composition offsets (decode order) of the first video track, NO_OFFSETS when it has no ctts
    box (presentation order == decode order); None when the file is not understood. Raises
    VideoError when a sample table claims more than the file can hold or `max_samples` allows."""
    moov = _find_top_level(f, b"moov")
    if moov is None:
        return None
    check_sample_tables(moov, file_size=file_size, max_samples=max_samples)
    if _child(moov, b"mvex") is not None:  # fragmented: samples live in moofs
        return None
    for trak in _children(moov, b"trak"):
        if _handler(trak) == b"vide":
            return _offsets(trak)
    return None


def check_sample_tables(moov: bytes, *, file_size: int | None, max_samples: int) -> None:
    """Raise VideoError when a track's sample tables claim more than the file can hold."""
    for number, trak in enumerate(_children(moov, b"trak"), start=1):
        stbl = _path(trak, b"mdia", b"minf", b"stbl")
        if stbl is not None:
            _check_track(stbl, _TrackName(number, _handler(trak)), file_size=file_size, max_samples=max_samples)


@dataclass(frozen=True)
class _TrackName:
    number: int
    handler: bytes | None

    @property
    def sound(self) -> bool:
        return self.handler == b"soun"

    def table(self, kind: bytes) -> str:
        handler = _HANDLERS.get(self.handler, (self.handler or b"?").decode("latin-1"))
        return f"the MP4's {kind.decode()} table (track {self.number}, {handler})"


def _check_track(stbl: bytes, track: _TrackName, *, file_size: int | None, max_samples: int) -> None:
    for kind, width in _ENTRY_BYTES.items():
        box = _child(stbl, kind)
        if box is not None:
            _check_fits(box, kind, track, entries=_u32(box, 4), width_bits=8 * width, header=8)
    samples = _sample_count(stbl, track)
    if samples is not None and not track.sound:
        _check_claim(samples, b"stsz", track, file_size=file_size)
        if samples > max_samples:
            raise VideoError(too_many_frames(samples, what=f"{track.table(b'stsz')} counts", limit=max_samples),
                             kind="video.too_large")
    for kind in (b"ctts",) if track.sound else (b"stts", b"ctts"):
        box = _child(stbl, kind)
        if box is not None:
            _check_claim(_run_total(box), kind, track, file_size=file_size)


def _sample_count(stbl: bytes, track: _TrackName) -> int | None:
    """Samples of a track with a constant sample size (no table: the count alone is the claim);
    None for a per-sample size table, whose entries are checked against its box."""
    if (stsz := _child(stbl, b"stsz")) is not None:
        size, count = _u32(stsz, 4), _u32(stsz, 8)
        if size == 0:
            _check_fits(stsz, b"stsz", track, entries=count, width_bits=32, header=12)
        return count
    if (stz2 := _child(stbl, b"stz2")) is not None and len(stz2) >= 12:
        count = _u32(stz2, 8)
        _check_fits(stz2, b"stz2", track, entries=count, width_bits=stz2[7], header=12)
        return count
    return None


def _check_fits(box: bytes, kind: bytes, track: _TrackName, *, entries: int, width_bits: int, header: int) -> None:
    room = max(0, len(box) - header) * 8 // max(width_bits, 1)
    if entries > room:
        raise VideoError(f"{track.table(kind)} claims {entries} entries but its box holds {room}; {_CORRUPT}")


def _check_claim(samples: int, kind: bytes, track: _TrackName, *, file_size: int | None) -> None:
    if file_size is not None and samples > file_size:
        raise VideoError(
            f"{track.table(kind)} claims {samples} samples but the file has {file_size} bytes, and "
            f"every sample takes at least one; {_CORRUPT}"
        )


def _run_total(box: bytes) -> int:
    """Samples a run-length table (count, value pairs) covers, summed without expanding it."""
    return int(_runs(box)[0].sum(dtype=np.uint64))


def _runs(box: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(counts, values) of a run-length table whose entry count was checked against its box."""
    pairs = np.frombuffer(box, dtype=">u4", count=2 * _u32(box, 4), offset=8).reshape(-1, 2)
    return pairs[:, 0].astype(np.int64), pairs[:, 1]


def _u32(box: bytes, offset: int) -> int:
    return struct.unpack_from(">I", box, offset)[0] if len(box) >= offset + 4 else 0


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


def _offsets(trak: bytes) -> OffsetRuns | None:
    stbl = _path(trak, b"mdia", b"minf", b"stbl")
    if stbl is None:
        return None
    elst = _path(trak, b"edts", b"elst")
    if elst is not None and struct.unpack_from(">I", elst, 4)[0] > 1:
        return None  # several edits reorder or repeat media; leave those to the packet scan
    ctts = _child(stbl, b"ctts")
    if ctts is None:
        return NO_OFFSETS
    counts, values = _runs(ctts)
    # Signed in version 1, and writers put signed values in version 0 too.
    return OffsetRuns(counts=counts, offsets=values.view(">i4").astype(np.int64))
