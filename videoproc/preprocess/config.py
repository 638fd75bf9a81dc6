"""Job files and flags into option records. A job file (TOML) takes the same names as the flags,
with dashes or underscores; flags given on the command line override it, and a sampling flag
(--num-frames, --fps, --max-frames, or a clip flag) replaces the file's whole sampling group."""

from __future__ import annotations

from typing import Any

from videoproc.common.checks import parse_bytes, parse_json_object, parse_list
from videoproc.common.errors import OptionsError
from videoproc.common.jobfile import given_flags, load_job_file
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.source.options import SourceOptions
from videoproc.video.options import ClipOptions, FrameFormat, VideoOptions, parse_compression, parse_size

_VIDEO = {"num_frames", "fps", "max_frames", "size", "resize_mode", "no_autorotate", "strict", "max_alloc", "seek_mode"}
# Clip flags and job-file keys, by their ClipOptions field.
_CLIP = {"clip_frames": "frames", "clip_fps": "fps", "clips_per_video": "per_video", "clip_stride": "stride",
         "max_clips": "max_clips", "clip_sampling": "sampling", "clip_seed": "seed", "short_video": "short_video"}
# Frame-format flags and job-file keys (FrameFormat; --compression is parsed, zstd[:LEVEL]).
_STORE = {"frame_format": "format", "frame_quality": "quality", "jpeg_chroma": "chroma"}
_SOURCE_PLAIN = {"allow_private_network", "local_root", "connect_timeout", "read_timeout", "http_retries",
                 "max_redirects", "cache_entries"}
_SOURCE_LISTS = {"allowed_domains", "allow_private_hosts", "allowed_prefixes"}
_SOURCE = _SOURCE_PLAIN | _SOURCE_LISTS | {"storage_options", "max_download_bytes", "max_data_uri_bytes"}
_RUN = {"workers", "shard_size", "timeout", "decoder_threads", "executor", "ray_address", "progress", "overwrite",
        "retry_failed", "worker_memory", "break_lock", "lock_lease"}
_TOP = {"output", "uri_column", "id_column"}
KNOWN = _VIDEO | set(_CLIP) | set(_STORE) | {"compression"} | _SOURCE | _RUN | _TOP


def load_config(path: str) -> dict[str, Any]:
    return load_job_file(path, known=KNOWN)


SAMPLING = ("num_frames", "fps", "max_frames", *_CLIP)


def merge_flags(file_values: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """The job file's values overridden by the flags given (None: not given). Sampling is one
    choice, a count or a rate, so any sampling flag drops all of the file's sampling keys: the
    file's num-frames never clashes with --fps, nor its fps and max-frames with --num-frames."""
    given = given_flags(flags)
    if given.keys() & set(SAMPLING):
        file_values = {key: value for key, value in file_values.items() if key not in SAMPLING}
    return {**file_values, **given}


def build_options(*, manifest: str, values: dict[str, Any]) -> PreprocessOptions:
    if not values.get("output"):
        raise OptionsError("--output is required: a local folder or fsspec URL for the shards")
    columns = {k: values[k] for k in ("uri_column", "id_column") if k in values}
    return PreprocessOptions(
        manifest=manifest,
        output=str(values["output"]),
        **columns,
        video=_video(values),
        source=_source(values, output=str(values["output"])),
        run=_run(values),
    )


def _video(values: dict[str, Any]) -> VideoOptions:
    kwargs = {k: values[k] for k in _VIDEO - {"size", "no_autorotate", "max_alloc"} if k in values}
    if "size" in values:
        kwargs["size"] = parse_size(str(values["size"]))
    if "max_alloc" in values:
        kwargs["max_alloc"] = parse_bytes(values["max_alloc"])
    if values.get("no_autorotate"):
        kwargs["autorotate"] = False
    clips = {field: values[key] for key, field in _CLIP.items() if key in values}
    if clips:
        kwargs["clips"] = _clip_options(clips)
    return VideoOptions(**kwargs, store=_store(values))


def _store(values: dict[str, Any]) -> FrameFormat:
    kwargs = {field: values[key] for key, field in _STORE.items() if key in values}
    if "jpeg_chroma" in values:
        kwargs["chroma"] = str(values["jpeg_chroma"])
    if "compression" in values:
        kwargs["compression"], level = parse_compression(values["compression"])
        if level is not None:
            kwargs["zstd_level"] = level
    return FrameFormat(**kwargs)


def _clip_options(clips: dict[str, Any]) -> ClipOptions:
    if "frames" not in clips:
        given = ", ".join(f"--{key.replace('_', '-')}" for key, field in _CLIP.items() if field in clips)
        raise OptionsError(
            f"{given} set(s) clip placement but clip mode needs --clip-frames T (got no clip_frames); "
            "e.g. --clip-frames 16 --clip-fps 8"
        )
    return ClipOptions(**clips)


def _run(values: dict[str, Any]) -> RunOptions:
    kwargs = {k: values[k] for k in _RUN if k in values}
    if "worker_memory" in values:
        kwargs["worker_memory"] = parse_bytes(values["worker_memory"])
    return RunOptions(**kwargs)


def _source(values: dict[str, Any], *, output: str) -> SourceOptions:
    kwargs: dict[str, Any] = {k: values[k] for k in _SOURCE_PLAIN if k in values}
    if "storage_options" in values:
        kwargs["storage_options"] = parse_json_object(values["storage_options"])
    for name in _SOURCE_LISTS & set(values):
        kwargs[name] = parse_list(values[name])
    if "allowed_domains" in kwargs:
        kwargs["allowed_domains"] = tuple(d.lower() for d in kwargs["allowed_domains"])
    for name in ("max_download_bytes", "max_data_uri_bytes"):
        if name in values:
            kwargs[name] = parse_bytes(values[name])
    return SourceOptions(own_output=output, **kwargs)

