"""The `preprocess` and `status` click commands; videoproc.cli registers them on the `videoproc` group.
Thin: parses flags into option records and calls the library.

Exit codes (preprocess): 0 finished, every row ok; 3 finished, some rows failed (see the summary);
4 incomplete, some shards could not be written (re-run to finish); 2 bad options, manifest, a
refused resume or an output locked by another run, before any work; 5 this run's lock on an
object-storage output was broken or expired, so it stopped committing; 130 interrupted (Ctrl-C);
1 crashed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from videoproc.common.errors import ManifestError, OptionsError, ResumeError
from videoproc.common.runlock import EXIT_LOCK_LOST, LockLost, OutputLocked
from videoproc.preprocess.config import build_options, load_config, merge_flags

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


@click.command()
@click.argument("manifest")
@click.option("--output", "-o", help="Output folder: local path or fsspec URL (s3://bucket/prefix). Required.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML job file with the same options; flags override it, and a sampling flag replaces its "
                   "num-frames, fps, max-frames and clip options.")
@click.option("--num-frames", type=int,
              help="Frames spread uniformly over each video (default 16 when --fps is not set).")
@click.option("--fps", type=float, help="Sample this many frames per second of video instead.")
@click.option("--max-frames", type=int, help="With --fps: keep at most this many, spread uniformly.")
@click.option("--clip-frames", type=int,
              help="Clip mode: one row per clip of this many frames, several clips per video.")
@click.option("--clip-fps", type=float,
              help="With --clip-frames: sample each clip at this rate (default: consecutive source frames).")
@click.option("--clips-per-video", type=int,
              help="With --clip-frames: clips spread uniformly, first at the start, last at the end (default 1).")
@click.option("--clip-stride", type=float, help="With --clip-frames: seconds between clip starts instead.")
@click.option("--max-clips", type=int, help="With --clip-stride: keep at most this many clips, spread uniformly.")
@click.option("--clip-sampling", type=click.Choice(["uniform", "random"]),
              help="uniform (default) or random: --clips-per-video random starts, seeded by --clip-seed and id.")
@click.option("--clip-seed", type=int, help="Seed of --clip-sampling random (default 0).")
@click.option("--short-video", type=click.Choice(["skip", "pad", "loop"]),
              help="A video shorter than one clip: skip (default, a skipped row), pad with its last frame, or loop.")
@click.option("--size", help="Output WIDTHxHEIGHT in pixels, or 'original' (default 224x224).")
@click.option("--resize-mode", type=click.Choice(["stretch", "crop", "pad"]), help="stretch (default), crop or pad.")
@click.option("--no-autorotate", is_flag=True, default=None,
              help="Keep the coded orientation (ignore display rotation).")
@click.option("--strict", is_flag=True, default=None, help="Fail a row on any decode error instead of concealing it.")
@click.option("--seek-mode", type=click.Choice(["exact", "keyframe"]),
              help="exact (default) or keyframe: nearest keyframes, approximate, ~20x faster.")
@click.option("--max-alloc", help="Bytes one row may allocate, e.g. 512MiB (default).")
@click.option("--workers", type=int, help="Worker processes of the local executor (default: CPU count).")
@click.option("--shard-size", type=int, help="Manifest rows per output shard (default 1000).")
@click.option("--timeout", type=float, help="Seconds per video before it fails (default 300).")
@click.option("--decoder-threads", type=int, help="FFmpeg threads per decoder (default: cores / workers).")
@click.option("--worker-memory",
              help="Address-space ceiling per worker process, e.g. 6GiB; 0 for none "
                   "(default: 2GiB + 4 x --max-alloc + 128MiB per decoder thread).")
@click.option("--uri-column", help="Manifest column holding the video URIs (default 'uri').")
@click.option("--id-column", help="Manifest column holding row ids (default 'id'; derived from position when absent).")
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
@click.option("--max-download-bytes", help="Cap on bytes fetched per http(s) video (default 4GiB).")
@click.option("--max-data-uri-bytes", help="Cap on the decoded size of a data: URI (default 64MiB).")
@click.option("--connect-timeout", type=float, help="Seconds to connect to an http(s) server (default 10).")
@click.option("--read-timeout", type=float, help="Seconds to wait for each http(s) read (default 60).")
@click.option("--http-retries", type=int, help="Retries on connection errors, 5xx and 429 (default 3).")
@click.option("--max-redirects", type=int, help="Redirects followed per request (default 5).")
@click.option("--cache-entries", type=int, help="Remote objects cached per worker, 0 for none (default 4).")
@click.option("--executor", type=click.Choice(["local", "ray"]), help="local process pool (default) or a Ray cluster.")
@click.option("--ray-address", help="Ray cluster address (auto, or HOST:PORT).")
@click.option("--progress", type=click.Choice(["auto", "bar", "lines", "off"]), help="Progress display (default auto).")
@click.option("--overwrite", is_flag=True, default=None, help="Discard an existing output and start over.")
@click.option("--retry-failed", is_flag=True, default=None, help="Redo only the failed rows of an existing output.")
@click.option("--break-lock", is_flag=True, default=None,
              help="Take an object-storage output's lock from the run holding it (only if that run is gone).")
@click.option("--lock-lease", type=float, help="Seconds an object-storage lock lasts without renewal (default 60).")
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
        sys.exit(EXIT_BAD_INPUT)
    except LockLost as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_LOCK_LOST)
    except KeyboardInterrupt:
        # Committed shards stay committed; half-written ones were discarded on the way out.
        click.echo("interrupted; run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
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
    sys.exit(0 if info["exists"] else EXIT_BAD_INPUT)

