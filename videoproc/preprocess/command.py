"""The `preprocess` and `status` click commands; videoproc.cli registers them on the `videoproc` group.
Thin: parses flags into option records and calls the library.

Exit codes: videoproc.common.exitcodes.ExitCode, the table both stages share (and the README's).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from videoproc.common.errors import ManifestError, OptionsError, ResumeError
from videoproc.common.exitcodes import ExitCode
from videoproc.common.flaghelp import as_bytes, as_size, doc
from videoproc.common.memory import WORKER_BASE_BYTES, WORKER_BYTES_PER_THREAD
from videoproc.common.runlock import LockLost, OutputLocked
from videoproc.preprocess.config import build_options, load_config, merge_flags
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.source.options import SourceOptions
from videoproc.video.options import DEFAULT_NUM_FRAMES, ClipOptions, FrameFormat, VideoOptions

# What RunOptions.worker_memory=None works out (videoproc.common.memory.default_worker_memory).
WORKER_MEMORY_RULE = (f"{as_bytes(WORKER_BASE_BYTES)} + 4 x --max-alloc + {as_bytes(WORKER_BYTES_PER_THREAD)} "
                      "per decoder thread")


@click.command()
@click.argument("manifest")
@click.option("--output", "-o", help="Output folder: local path or fsspec URL (s3://bucket/prefix). Required.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML job file with the same options; flags override it, and a sampling flag replaces its "
                   "num-frames, fps, max-frames and clip options.")
@click.option("--num-frames", type=int,
              help=doc(VideoOptions, "num_frames", "Frames spread uniformly over each video.",
                       derived=f"{DEFAULT_NUM_FRAMES} when --fps is not set"))
@click.option("--fps", type=float,
              help=doc(VideoOptions, "fps", "Sample this many frames per second of video instead."))
@click.option("--max-frames", type=int,
              help=doc(VideoOptions, "max_frames", "With --fps: keep at most this many, spread uniformly."))
@click.option("--clip-frames", type=int,
              help="Clip mode: one row per clip of this many frames, several clips per video.")
@click.option("--clip-fps", type=float,
              help=doc(ClipOptions, "fps",
                       "With --clip-frames: sample each clip at this rate; without it, consecutive source frames."))
@click.option("--clips-per-video", type=int,
              help=doc(ClipOptions, "per_video",
                       "With --clip-frames: clips spread uniformly, first at the start, last at the end.",
                       derived="1"))
@click.option("--clip-stride", type=float,
              help=doc(ClipOptions, "stride", "With --clip-frames: seconds between clip starts instead."))
@click.option("--max-clips", type=int,
              help=doc(ClipOptions, "max_clips",
                       "With --clip-stride: keep at most this many clips, spread uniformly."))
@click.option("--clip-sampling", type=click.Choice(["uniform", "random"]),
              help=doc(ClipOptions, "sampling",
                       "uniform, or random: --clips-per-video random starts, seeded by --clip-seed and id."))
@click.option("--clip-seed", type=int, help=doc(ClipOptions, "seed", "Seed of --clip-sampling random."))
@click.option("--short-video", type=click.Choice(["skip", "pad", "loop"]),
              help=doc(ClipOptions, "short_video",
                       "A video shorter than one clip: skip (a skipped row), pad with its last frame, or loop."))
@click.option("--size", help=doc(VideoOptions, "size", "Output WIDTHxHEIGHT in pixels, or 'original'.", show=as_size))
@click.option("--resize-mode", type=click.Choice(["stretch", "crop", "pad"]),
              help=doc(VideoOptions, "resize_mode", "stretch, crop or pad."))
@click.option("--no-autorotate", is_flag=True, default=None,
              help="Keep the coded orientation (ignore display rotation).")
@click.option("--strict", is_flag=True, default=None, help="Fail a row on any decode error instead of concealing it.")
@click.option("--seek-mode", type=click.Choice(["exact", "keyframe"]),
              help=doc(VideoOptions, "seek_mode", "exact, or keyframe: nearest keyframes, approximate, ~20x faster."))
@click.option("--max-alloc",
              help=doc(VideoOptions, "max_alloc", "Bytes one row may allocate, e.g. 1GiB.", show=as_bytes))
@click.option("--frame-format", type=click.Choice(["raw", "png", "jpeg", "webp"]),
              help=doc(FrameFormat, "format", "How frames are stored: raw pixels, or one png/jpeg/webp image each."))
@click.option("--frame-quality", type=int,
              help=doc(FrameFormat, "quality", "Quality 1-100 of --frame-format jpeg or webp."))
@click.option("--jpeg-chroma", type=click.Choice(["444", "420"]),
              help=doc(FrameFormat, "chroma", "Chroma subsampling of --frame-format jpeg: 444 keeps colour edges."))
@click.option("--compression",
              help=doc(FrameFormat, "compression", "With --frame-format raw: none, zstd or zstd:LEVEL (1-22; 3)."))
@click.option("--workers", type=int,
              help=doc(RunOptions, "workers", "Worker processes of the local executor.", derived="CPU count"))
@click.option("--shard-size", type=int, help=doc(RunOptions, "shard_size", "Manifest rows per output shard."))
@click.option("--timeout", type=float, help=doc(RunOptions, "timeout", "Seconds per video before it fails."))
@click.option("--decoder-threads", type=int,
              help=doc(RunOptions, "decoder_threads",
                       "FFmpeg threads per decoder (small pictures and short walks decode on one).",
                       derived="cores / workers"))
@click.option("--worker-memory",
              help=doc(RunOptions, "worker_memory", "Address-space ceiling per worker process, e.g. 6GiB; 0 for none.",
                       derived=WORKER_MEMORY_RULE))
@click.option("--uri-column", help=doc(PreprocessOptions, "uri_column", "Manifest column holding the video URIs."))
@click.option("--id-column",
              help=doc(PreprocessOptions, "id_column",
                       "Manifest column holding row ids (derived from position when absent)."))
@click.option("--storage-options", help="JSON object passed to fsspec for manifest, videos and output.")
@click.option("--allow-private-network", is_flag=True, default=None,
              help="Allow URLs that resolve to any private, loopback or link-local address.")
@click.option("--allow-private-hosts",
              help="Comma-separated private hosts URLs may reach: CIDRs, addresses or host names, "
                   "each with an optional :PORT.")
@click.option("--allowed-domains", help="Comma-separated host names that http(s) URLs may use.")
@click.option("--allowed-prefixes",
              help="Comma-separated URI prefixes (paths, s3://bucket/prefix, https://host/path) "
                   "every row must lie under.")
@click.option("--local-root", help="Confine local paths in the manifest to this folder.")
@click.option("--max-download-bytes",
              help=doc(SourceOptions, "max_download_bytes", "Cap on bytes fetched per http(s) video.", show=as_bytes))
@click.option("--max-data-uri-bytes",
              help=doc(SourceOptions, "max_data_uri_bytes", "Cap on the decoded size of a data: URI.", show=as_bytes))
@click.option("--connect-timeout", type=float,
              help=doc(SourceOptions, "connect_timeout", "Seconds to connect to an http(s) server."))
@click.option("--read-timeout", type=float,
              help=doc(SourceOptions, "read_timeout", "Seconds to wait for each http(s) read."))
@click.option("--http-retries", type=int,
              help=doc(SourceOptions, "http_retries", "Retries on connection errors, 5xx and 429."))
@click.option("--max-redirects", type=int, help=doc(SourceOptions, "max_redirects", "Redirects followed per request."))
@click.option("--cache-entries", type=int,
              help=doc(SourceOptions, "cache_entries", "Remote objects cached per worker, 0 for none."))
@click.option("--executor", type=click.Choice(["local", "ray"]),
              help=doc(RunOptions, "executor", "local process pool or a Ray cluster."))
@click.option("--ray-address", help="Ray cluster address (auto, or HOST:PORT).")
@click.option("--progress", type=click.Choice(["auto", "bar", "lines", "off"]),
              help=doc(RunOptions, "progress", "Progress display."))
@click.option("--overwrite", is_flag=True, default=None, help="Discard an existing output and start over.")
@click.option("--retry-failed", is_flag=True, default=None, help="Redo only the failed rows of an existing output.")
@click.option("--break-lock", is_flag=True, default=None,
              help="Take an object-storage output's lock from the run holding it (only if that run is gone).")
@click.option("--lock-lease", type=float,
              help=doc(RunOptions, "lock_lease", "Seconds an object-storage lock lasts without renewal."))
def preprocess(manifest: str, config_file: str | None, **flags: Any) -> None:
    """Sample, decode and resize frames of every video in MANIFEST into Parquet shards."""
    from videoproc.preprocess.job import run_preprocess
    from videoproc.preprocess.summary import format_summary

    started = time.monotonic()
    try:
        values = merge_flags(load_config(config_file) if config_file else {}, flags)
        options = build_options(manifest=manifest, values=values)
        report = run_preprocess(options)
    except (OptionsError, ManifestError, ResumeError, OutputLocked) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.REFUSED)
    except LockLost as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.LOCK_LOST)
    except KeyboardInterrupt:
        # Committed shards stay committed; half-written ones were discarded on the way out.
        click.echo("interrupted; run the same command again to resume", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    done = report.summary["rows_ok"] + report.summary["rows_failed"]
    click.echo(format_summary(report.summary, throughput=done / max(time.monotonic() - started, 1e-9)))
    sys.exit(report.exit_code)


@click.command()
@click.argument("output")
@click.option("--storage-options", help="JSON object passed to fsspec.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(output: str, storage_options: str | None, as_json: bool) -> None:
    """Shards committed and pending, rows ok and failed, common errors, and the run's options."""
    from videoproc.preprocess.status import format_status, read_status

    info = read_status(output, storage_options=json.loads(storage_options) if storage_options else {})
    click.echo(json.dumps(info, indent=2, default=str) if as_json else format_status(info))
    sys.exit(ExitCode.OK if info["exists"] else ExitCode.REFUSED)

