"""Memory bounds: what a row may track (from --max-alloc) and what a worker may map (--worker-memory).

A video's own numbers size several structures before a frame is decoded: its timeline (one entry
per frame), the packets a scan keeps, the sample times of fps sampling. Each is checked against a
budget derived from --max-alloc before it is built, at FRAME_COST_BYTES a frame (measured: a scan's
(pts, keyframe, duration) tuple is 104 bytes, sorting and the probe's tuples bring the peak to 170,
PyAV's index entry objects add about 65 while the MP4 index is read).

What FFmpeg allocates inside a call cannot be checked beforehand, so each worker process also runs
under an address-space ceiling (RLIMIT_AS): an allocation past it fails, FFmpeg returns ENOMEM or
Python raises MemoryError, and the row fails with a message naming --worker-memory. Decoders hide
a failed frame allocation (the frame just never comes), so the frames a stream's coded size needs
are checked against the room left under the ceiling before decoding. The ceiling
counts virtual memory, far above what a worker really uses: an idle worker maps 241 MB (56 MB
resident), and every decoder thread reserves a 64 MB malloc arena and a stack (1.7 GB mapped, 250 MB
resident after decoding 1080p H.264, VP9 and HEVC with 16 threads), hence the per-thread allowance.
"""

from __future__ import annotations

import resource

from videoproc.common.errors import VideoError

FRAME_COST_BYTES = 256
# A kept packet costs its payload plus this much (PyAV object, AVPacket, buffer refs, padding):
# measured 485 bytes a packet over 60 000 tiny ones.
PACKET_OVERHEAD_BYTES = 512
DEFAULT_MAX_ALLOC = 512 * 2**20
WORKER_BASE_BYTES = 2 * 2**30
WORKER_BYTES_PER_THREAD = 128 * 2**20
WORKER_MEMORY_OPTION = "--worker-memory"


def frame_budget(max_alloc: int) -> int:
    """Frames (or packets) whose timeline a row may track under `max_alloc` bytes."""
    return max(1, max_alloc // FRAME_COST_BYTES)


DEFAULT_MAX_FRAMES = frame_budget(DEFAULT_MAX_ALLOC)


def too_many_frames(count: int, *, what: str, limit: int) -> str:
    """The message of a video whose frame count is over the budget of --max-alloc."""
    return (
        f"{what} {count} frames; tracking a frame's timestamp costs about {FRAME_COST_BYTES} bytes, "
        f"so --max-alloc {limit * FRAME_COST_BYTES} allows at most {limit} frames; raise --max-alloc "
        "if the video is really this long"
    )


def default_worker_memory(max_alloc: int, *, threads: int) -> int:
    """The address-space ceiling of a worker when --worker-memory is not set, in bytes: a base for
    the interpreter and libraries, four times what a row may allocate (the row, the decoder's
    frames and references, the converter's buffers, the result on its way to the parent), and an
    allowance per decoder thread."""
    return WORKER_BASE_BYTES + 4 * max_alloc + threads * WORKER_BYTES_PER_THREAD


def limit_worker_memory(limit: int | None) -> None:
    """Set this process's address-space ceiling (RLIMIT_AS), never above an existing hard limit."""
    if limit is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def worker_memory_ceiling() -> int | None:
    """This process's address-space ceiling in bytes, or None when there is none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def check_decoder_room(width: int, height: int, *, threads: int) -> None:
    """Fail the row before decoding when the frames a decoder must hold cannot fit under this
    worker's ceiling. FFmpeg's decoders conceal a failed frame allocation as a frame that never
    comes, so running into the ceiling there would read as a broken file. The estimate is a lower
    bound: one 8-bit 4:2:0 frame (1.5 bytes a pixel) per decoding thread, plus a reference and the
    frame being output; frame buffers that large are mapped afresh, so they need unmapped room."""
    ceiling = worker_memory_ceiling()
    if ceiling is None:
        return
    needed = (threads + 2) * width * height * 3 // 2
    room = ceiling - _mapped_bytes()
    if needed > room:
        raise VideoError(
            f"a {width}x{height} stream needs at least {needed} bytes of decoder frames ({threads + 2} "
            f"frames), over the {max(room, 0)} bytes left under this worker's ceiling, "
            f"{WORKER_MEMORY_OPTION} {ceiling} bytes; raise {WORKER_MEMORY_OPTION} if the video is "
            "legitimate",
            kind="memory.ceiling",
        )


def _mapped_bytes() -> int:
    """This process's mapped address space (VmSize), 0 where /proc is not there to say."""
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:")), 0)
    except OSError:
        return 0


def out_of_memory_message(doing: str) -> str:
    """A failed row's message when an allocation failed (MemoryError, or FFmpeg's ENOMEM)."""
    ceiling = worker_memory_ceiling()
    if ceiling is None:
        return f"out of memory while {doing}; lower --size / --num-frames, or give the machine more memory"
    return (
        f"out of memory while {doing}: the worker's address space reached its ceiling, "
        f"{WORKER_MEMORY_OPTION} {ceiling} bytes; raise {WORKER_MEMORY_OPTION} if the video is legitimate, "
        "or lower --size / --num-frames"
    )
