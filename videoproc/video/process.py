"""One video, start to finish: source -> probe -> sample -> decode -> resize, as a result record.

In clip mode the video's clips are decoded together (their frames' union, each frame once) and
the result holds all of them, (K*T, H, W, 3), with each clip's window; the writer splits it into
one row per clip. A video shorter than one clip is a `skipped` result, not a failure.

With a frame format other than plain raw (--frame-format, --compression) the frames are encoded
here, in the worker (videoproc.video.encode): the result carries `encoded` instead of `frames`.

This is what a worker process runs. Every expected failure becomes a failed result with a message
for a person, and any other exception a failed result naming its type; nothing a video contains
can stop the run.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import av

from videoproc.common.errors import VideoError
from videoproc.common.memory import FRAME_COST_BYTES, check_decoder_room, frame_budget, out_of_memory_message
from videoproc.source import open_uri
from videoproc.source.options import SourceOptions
from videoproc.video.clips import ShortVideo, clip_count, place_clips
from videoproc.video.decode import DecodedFrames, FrameDecoder, decoder_threads
from videoproc.video.encode import encode_frames
from videoproc.video.mp4index import OffsetRuns, is_iso_bmff, video_composition_offsets
from videoproc.video.options import FrameFormat, VideoOptions
from videoproc.video.packets import KEEP_PACKETS_BYTES
from videoproc.video.probe import VideoProbe, probe_keeping_packets
from videoproc.video.probe_index import TimelineMismatch, probe_from_index
from videoproc.video.resize import FrameConverter, displayed_size, plan_resize, shared_converter
from videoproc.video.sample import keyframe_bound, select_indices


@dataclass(frozen=True, kw_only=True)
class VideoTask:
    """One manifest row to process. `row` is its position in the manifest (0-based)."""

    row: int
    id: str
    uri: str


@dataclass(frozen=True, kw_only=True)
class VideoResult:
    """The output row of one manifest row, minus passed-through columns (the writer adds them)."""

    row: int
    id: str
    uri: str
    status: Literal["ok", "failed", "skipped"]
    error: str | None = None
    error_kind: str | None = None  # one of videoproc.common.errors.ERROR_KINDS when failed
    frames: bytes | bytearray | None = None
    shape: tuple[int, int, int, int] | None = None
    frame_indices: list[int] | None = None
    timestamps: list[float] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    decode_errors: int = 0
    frames_decoded: int = 0
    frames_decoded_min: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    # Clip mode: the (start, end) seconds of each clip; `frames` holds the clips one after another.
    clip_windows: tuple[tuple[float, float], ...] | None = None
    # Encoded frames (then `frames` is None): one image per frame, or one zstd blob per row (clip).
    encoded: tuple[bytes, ...] | None = None
    encoded_per: Literal["frame", "row"] = "frame"


@dataclass(frozen=True, kw_only=True)
class _Selection:
    """The frames to decode, in output order, and the clip windows they form (None: not clips)."""

    targets: list[int]
    windows: tuple[tuple[float, float], ...] | None = None


class _Skip(Exception):
    def __init__(self, reason: str, info: VideoProbe) -> None:
        super().__init__(reason)
        self.info = info


def process_video(task: VideoTask, *, video: VideoOptions, source: SourceOptions, threads: int) -> VideoResult:
    started = time.monotonic()
    try:
        check_id(task.id)
        with open_uri(task.uri, options=source) as reader:
            result = _extract(task, reader, video=video, threads=threads)
    except VideoError as exc:
        result = failed(task, str(exc), kind=exc.kind)
    except MemoryError:  # FFmpeg's ENOMEM too (av.error.MemoryError), under a --worker-memory ceiling
        result = failed(task, out_of_memory_message("processing this video"), kind="memory.ceiling")
    except av.error.FFmpegError as exc:
        result = failed(task, f"not a readable video: {_ffmpeg_reason(exc)}", kind="video.unreadable")
    except OSError as exc:  # a storage read failing mid-decode, after the source opened fine
        result = failed(task, f"read error: {exc}", kind="source.read")
    except Exception as exc:  # a bug or an input nobody foresaw: one failed row, never a dead worker
        result = failed(task, f"unexpected error {type(exc).__name__}: {exc}; please report it with this row's URI",
                        kind="unexpected")
    return _with_seconds(result, time.monotonic() - started)


def failed(task: VideoTask, error: str, *, kind: str, **extra: Any) -> VideoResult:
    """A failed row: `error` for people, `kind` (one of ERROR_KINDS) to count and filter by."""
    return VideoResult(row=task.row, id=task.id, uri=task.uri, status="failed", error=error, error_kind=kind, **extra)


def check_id(video_id: str) -> None:
    """Preprocess never turns an id into a path, so any text is an id (path-like ones such as
    `kinetics/train/abc.mp4` included) except the empty string and text with NUL, which logs and
    the C libraries that see ids cut short."""
    if not video_id or "\x00" in video_id:
        raise VideoError(
            f"id {video_id!r} is not allowed: ids must be non-empty and contain no NUL character; "
            "fix the manifest's id column"
        )


def _extract(task: VideoTask, reader, *, video: VideoOptions, threads: int) -> VideoResult:
    offsets = _mp4_offsets(reader, max_samples=frame_budget(video.max_alloc))
    try:
        try:
            info, selection, decoded = _probe_and_decode(reader, offsets, task=task, video=video, threads=threads)
        except TimelineMismatch:
            # The container's tables disagree with its packets: start over from a packet scan, with a
            # fresh demuxer and decoder (an opened decoder keeps its threading and its state).
            reader.seek(0)
            info, selection, decoded = _probe_and_decode(reader, None, task=task, video=video, threads=threads)
    except _Skip as skip:
        return VideoResult(row=task.row, id=task.id, uri=task.uri, status="skipped", error=str(skip),
                           source=_source_columns(skip.info, None), bytes_read=reader.bytes_read)
    return _encoded(_ok(task, decoded, info, selection, bytes_read=reader.bytes_read), decoded, video.store)


def _encoded(result: VideoResult, decoded: DecodedFrames, store: FrameFormat) -> VideoResult:
    if store.is_default:
        return result
    rows = len(result.clip_windows) if result.clip_windows is not None else 1
    per = "row" if store.format == "raw" else "frame"
    return replace(result, frames=None, encoded=encode_frames(decoded.frames, store, rows=rows), encoded_per=per)


def _probe_and_decode(reader, offsets: OffsetRuns | None, *, task: VideoTask, video: VideoOptions, threads: int):
    with _open_container(reader) as container:
        info, packets = _timeline(container, offsets, file_size=reader.size(), limit=frame_budget(video.max_alloc))
        selection = _select(info, video, key=task.id)
        return info, selection, _decode(container, info, selection.targets, packets, video=video, threads=threads)


def _timeline(
    container, offsets: OffsetRuns | None, *, file_size: int | None, limit: int
) -> tuple[VideoProbe, list | None]:
    """The MP4 tables' timeline when they give one; otherwise a packet scan, which keeps the
    packets of a short stream for the decoder. Either fails the row past `limit` frames."""
    if offsets is not None and (
        index_probe := probe_from_index(container, offsets, file_size=file_size, max_frames=limit)
    ):
        return index_probe, None
    return probe_keeping_packets(container, max_bytes=KEEP_PACKETS_BYTES, max_frames=limit)


def _ok(task: VideoTask, decoded: DecodedFrames, info: VideoProbe, selection: _Selection,
        *, bytes_read: int) -> VideoResult:
    stats = decoded.stats
    return VideoResult(
        row=task.row,
        id=task.id,
        uri=task.uri,
        status="ok",
        frames=decoded.buffer,
        shape=tuple(decoded.frames.shape),
        frame_indices=decoded.indices,
        timestamps=decoded.timestamps,
        source=_source_columns(info, decoded.rotation),
        decode_errors=stats.decode_errors + stats.substituted,
        frames_decoded=stats.frames_decoded,
        frames_decoded_min=keyframe_bound(selection.targets, info.keyframes),
        bytes_read=bytes_read,
        clip_windows=selection.windows,
    )


def _select(info: VideoProbe, video: VideoOptions, *, key: str) -> _Selection:
    if video.clips is None:
        return _Selection(targets=_targets(info, video))
    _check_clip_count(info, video)
    try:
        clips = place_clips(info.timestamps, duration=info.duration, options=video.clips, key=key)
    except ShortVideo as exc:
        raise _Skip(str(exc), info) from None
    targets = [index for clip in clips for index in clip.indices]
    _check_alloc(info, len(targets), video)
    return _Selection(targets=targets, windows=tuple((clip.start, clip.end) for clip in clips))


def _targets(info: VideoProbe, video: VideoOptions) -> list[int]:
    _check_sample_times(info, video)
    targets = select_indices(
        info.timestamps,
        duration=info.duration,
        num_frames=video.num_frames,
        fps=video.fps,
        max_frames=video.max_frames,
    )
    _check_alloc(info, len(targets), video)
    return targets


def _decode(container, info: VideoProbe, targets: list[int], packets, *, video: VideoOptions, threads: int):
    # Keyframe mode decodes about one frame a target; exact mode up to the keyframe bound.
    walk = len(targets) if video.seek_mode == "keyframe" else keyframe_bound(targets, info.keyframes)
    threads = decoder_threads(threads, width=info.width, height=info.height, frames=walk)
    check_decoder_room(info.width, info.height, threads=threads)
    decoder = FrameDecoder(
        container,
        info,
        strict=video.strict,
        autorotate=video.autorotate,
        threads=threads,
        make_converter=lambda rotation: _converter(info, rotation, video, threads),
        packets=packets,
    )
    return decoder.decode(targets, seek_mode=video.seek_mode)


def _mp4_offsets(reader, *, max_samples: int) -> OffsetRuns | None:
    """Composition offsets from an MP4's tables, read before the demuxer owns the file position.
    Raises VideoError for tables that claim more samples than the file or --max-alloc allow,
    before FFmpeg builds an index from them."""
    try:
        mp4 = is_iso_bmff(reader.read(12))
        offsets = video_composition_offsets(reader, file_size=reader.size(), max_samples=max_samples) if mp4 else None
    except (OSError, ValueError, struct.error):
        offsets = None
    reader.seek(0)
    return offsets


def _open_container(reader):
    try:
        return av.open(reader, mode="r", metadata_errors="ignore")
    except av.error.MemoryError:
        raise  # not the file's fault: the worker's memory ceiling
    except av.error.FFmpegError as exc:
        raise VideoError(f"not a readable video container: {_ffmpeg_reason(exc)}", kind="video.unreadable") from exc


def _converter(info: VideoProbe, rotation: int, video: VideoOptions, threads: int) -> FrameConverter:
    shown_w, shown_h = displayed_size(info.width, info.height, rotation)
    plan = plan_resize(shown_w, shown_h, size=video.size, mode=video.resize_mode)
    return shared_converter(plan, rotation=rotation, threads=1 if threads <= 1 else 0)


def _check_sample_times(info: VideoProbe, video: VideoOptions) -> None:
    """fps sampling makes one sample time per 1/fps of the duration before --max-frames keeps
    some; a timestamp far in the future would make billions."""
    if video.fps is None:
        return
    count = math.floor(info.duration * video.fps + 1e-9)
    limit = frame_budget(video.max_alloc)
    if count > limit:
        raise VideoError(
            f"--fps {video.fps:g} over its {info.duration:.0f} s duration would make {count} sample "
            f"times, over the {limit} that --max-alloc {video.max_alloc} allows (about "
            f"{FRAME_COST_BYTES} bytes each); raise --max-alloc or lower --fps",
            kind="video.too_large",
        )


def _check_clip_count(info: VideoProbe, video: VideoOptions) -> None:
    """--clip-stride without --max-clips makes one clip per stride of the duration; a timestamp
    far in the future would make billions."""
    clips = video.clips
    count = clip_count(info.timestamps, duration=info.duration, options=clips)
    limit = frame_budget(video.max_alloc)
    if count * clips.frames > limit:
        raise VideoError(
            f"{count} clips of {clips.frames} frames over its {info.duration:.0f} s duration make "
            f"{count * clips.frames} frames, over the {limit} that --max-alloc {video.max_alloc} allows "
            f"(about {FRAME_COST_BYTES} bytes each); add --max-clips, raise --clip-stride or --max-alloc"
        )


def _check_alloc(info: VideoProbe, count: int, video: VideoOptions) -> None:
    """Refuse before decoding when the row would need more memory than --max-alloc allows."""
    out_w, out_h = video.size or (info.width, info.height)
    needed = count * out_w * out_h * 3 + info.width * info.height * 3
    if needed > video.max_alloc:
        raise VideoError(
            f"needs {needed} bytes ({count} frames of {out_w}x{out_h} RGB plus one {info.width}x"
            f"{info.height} source frame), over --max-alloc {video.max_alloc}; raise --max-alloc "
            "or lower --size / --num-frames / --max-frames (clips: --clip-frames / --clips-per-video)",
            kind="video.too_large",
        )


def _source_columns(info: VideoProbe, rotation: int | None) -> dict[str, Any]:
    return {
        "source_width": info.width,
        "source_height": info.height,
        "source_fps": info.fps,
        "source_duration": info.duration,
        "source_num_frames": info.num_frames,
        "codec": info.codec,
        "rotation": rotation,
    }


def _ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _with_seconds(result: VideoResult, seconds: float) -> VideoResult:
    return replace(result, seconds=seconds)
