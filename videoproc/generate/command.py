"""The `generate` click command: a job file (--config) and flags in, `GenerateOptions` out, `run` called.
Flags keep click defaults of None; the defaults, and the help's `[default: ...]`, come from the option records.

Exit codes: videoproc.common.exitcodes.ExitCode, the table both stages share (and the README's).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from videoproc.common.errors import OptionsError, ResumeError
from videoproc.common.exitcodes import ExitCode
from videoproc.common.flaghelp import as_bytes, doc
from videoproc.generate.config import build_options, load_config, merge_flags
from videoproc.generate.options import (
    DEVICES,
    DTYPES,
    ENGINES,
    EXECUTORS,
    FITS,
    GenerateOptions,
    Limits,
    ReferenceRules,
)


@click.command("generate", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("queue")
@click.option("--output", "-o", help="Output folder: local path or fsspec URL (s3://...). Required.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML job file with the same options; flags override it.")
@click.option("--model", multiple=True,
              help="'tiny-random' or a diffusers-format folder; repeat to serve text- and image-to-video. Required.")
@click.option("--engine", type=click.Choice(ENGINES),
              help=doc(GenerateOptions, "engine", "The engine that runs the model."))
@click.option("--device", type=click.Choice(DEVICES),
              help=doc(GenerateOptions, "device", "auto: CUDA when available, else CPU."))
@click.option("--dtype", type=click.Choice(DTYPES),
              help=doc(GenerateOptions, "dtype", "auto: bfloat16 on CUDA, float32 on CPU."))
@click.option("--fit", type=click.Choice(FITS),
              help=doc(GenerateOptions, "fit", "A size or frame count the model cannot make: round it (and record "
                                               "that) or fail the request."))
@click.option("--max-width", type=click.IntRange(min=1), help=doc(Limits, "max_width", "Widest request, in pixels."))
@click.option("--max-height", type=click.IntRange(min=1), help=doc(Limits, "max_height", "Tallest request, in pixels."))
@click.option("--max-frames", type=click.IntRange(min=1), help=doc(Limits, "max_frames", "Longest request, in frames."))
@click.option("--storage-options", help="JSON object passed to fsspec for QUEUE and OUTPUT.")
@click.option("--progress", type=click.Choice(["auto", "bar", "lines", "off"]),
              help=doc(GenerateOptions, "progress", "Progress display."))
@click.option("--executor", type=click.Choice(EXECUTORS),
              help=doc(GenerateOptions, "executor", "local: this process; ray: one actor per GPU of a Ray cluster."))
@click.option("--ray-address",
              help=doc(GenerateOptions, "ray_address", "Ray cluster address: auto, or the head's HOST:PORT.",
                       derived="Ray's default"))
@click.option("--ray-actors", type=click.IntRange(min=1),
              help=doc(GenerateOptions, "ray_actors", "Actors to run.",
                       derived="one per GPU; on a CPU-only cluster one per node"))
@click.option("--local-root", help="Confine local input_reference paths to this folder.")
@click.option("--allowed-domains", help="Comma-separated host names that http(s) references may use.")
@click.option("--allow-private-hosts",
              help="Comma-separated private hosts references may reach: CIDRs, addresses or host names, "
                   "each with an optional :PORT.")
@click.option("--allowed-prefixes", help="Comma-separated URI prefixes every input_reference must lie under.")
@click.option("--max-reference-bytes",
              help=doc(ReferenceRules, "max_bytes", "Cap on one input_reference image.", show=as_bytes))
@click.option("--reference-timeout", type=float,
              help=doc(ReferenceRules, "timeout", "Seconds one input_reference may take to fetch in all."))
@click.option("--break-lock", is_flag=True, default=None,
              help="Take an object-storage output's lock from the run holding it (only if that run is gone).")
@click.option("--lock-lease", type=float,
              help=doc(GenerateOptions, "lock_lease", "Seconds an object-storage lock lasts without renewal."))
def generate(queue: str, config_file: str | None, **flags: Any) -> None:
    """Generate a video for every request in the Parquet QUEUE into OUTPUT/videos/<id>.mp4, with
    records in OUTPUT/records.parquet. Re-running skips completed requests."""
    from videoproc.generate.engines import EngineError
    from videoproc.generate.lock import LockLost, OutputLocked
    from videoproc.generate.runner import run

    try:
        values = merge_flags(load_config(config_file) if config_file else {}, flags)
        opts = build_options(queue=queue, values=values)
        summary = run(opts)
    # Refusals only: bad options or queue, a resume with other settings, a locked output, a missing
    # engine. Anything else raised mid-run (a storage or Arrow error, a bug) is a crash (1), traceback shown.
    except (OptionsError, ResumeError, OutputLocked, EngineError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.REFUSED)
    except LockLost as exc:  # our object-storage lock was broken: we stopped recording
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.LOCK_LOST)
    except KeyboardInterrupt:
        # Recorded requests stay recorded; a video cut short is a hidden partial file the next run removes.
        click.echo("interrupted; run the same command again to resume", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    click.echo(summary.line())
    # The same codes as preprocess: failed requests are records, and a scheduler can tell
    # "finished, some failed" (3) from "refused" (2), "crashed" (1) and, on Ray, "requests left
    # unrun because the actors were lost; re-run to finish" (4); 5 when this run's object-storage
    # lock was broken or expired and it stopped recording.
    sys.exit(summary.counts().exit_code())
