"""The `generate` click command: flags in, `GenerateOptions` out, `run` called.

Exit codes: videoproc.common.exitcodes.ExitCode, the table both stages share (and the README's).
"""

from __future__ import annotations

import sys

import click

from videoproc.common.checks import parse_bytes, parse_json_object, parse_list
from videoproc.common.errors import OptionsError, ResumeError
from videoproc.common.exitcodes import ExitCode
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
@click.option("--output", "-o", required=True, help="Output folder: local path or fsspec URL (s3://...).")
@click.option("--model", "models", multiple=True, required=True,
              help="'tiny-random' or a diffusers-format folder; repeat to serve text- and image-to-video.")
@click.option("--engine", type=click.Choice(ENGINES), default="diffusers", show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="auto: CUDA when available, else CPU.")
@click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True,
              help="auto: bfloat16 on CUDA, float32 on CPU.")
@click.option("--fit", type=click.Choice(FITS), default="round", show_default=True,
              help="A size or frame count the model cannot make: round it (and record that) or fail the request.")
@click.option("--max-width", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option("--max-height", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option("--max-frames", type=click.IntRange(min=1), default=1025, show_default=True)
@click.option("--storage-options", default="{}", help="JSON object passed to fsspec for QUEUE and OUTPUT.")
@click.option("--progress", type=click.Choice(["auto", "bar", "lines", "off"]), default="auto", show_default=True)
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="local: this process; ray: one actor per GPU of a Ray cluster.")
@click.option("--ray-address", help="Ray cluster address: auto, or the head's HOST:PORT (default: Ray's own).")
@click.option("--ray-actors", type=click.IntRange(min=1),
              help="Actors to run (default: one per GPU; on a CPU-only cluster one per node).")
@click.option("--local-root", help="Confine local input_reference paths to this folder.")
@click.option("--allowed-domains", default="", help="Comma-separated host names that http(s) references may use.")
@click.option("--allow-private-hosts", default="",
              help="Comma-separated private hosts references may reach: CIDRs, addresses or host names, "
                   "each with an optional :PORT.")
@click.option("--allowed-prefixes", default="",
              help="Comma-separated URI prefixes every input_reference must lie under.")
@click.option("--max-reference-bytes", default="32MiB", show_default=True, help="Cap on one input_reference image.")
@click.option("--reference-timeout", type=float, default=60.0, show_default=True,
              help="Seconds one input_reference may take to fetch in all.")
@click.option("--break-lock", is_flag=True,
              help="Take an object-storage output's lock from the run holding it (only if that run is gone).")
@click.option("--lock-lease", type=float, default=60.0, show_default=True,
              help="Seconds an object-storage lock lasts without renewal.")
def generate(queue, output, models, engine, device, dtype, fit, max_width, max_height, max_frames,
             storage_options, progress, executor, ray_address, ray_actors, local_root, allowed_domains,
             allow_private_hosts, allowed_prefixes, max_reference_bytes, reference_timeout, break_lock,
             lock_lease) -> None:
    """Generate a video for every request in the Parquet QUEUE into OUTPUT/videos/<id>.mp4, with
    records in OUTPUT/records.parquet. Re-running skips completed requests."""
    from videoproc.generate.engines import EngineError
    from videoproc.generate.lock import LockLost, OutputLocked
    from videoproc.generate.runner import run

    try:
        opts = GenerateOptions(
            queue=queue, output=output, models=tuple(models), engine=engine, device=device, dtype=dtype, fit=fit,
            limits=Limits(max_width=max_width, max_height=max_height, max_frames=max_frames),
            storage_options=parse_json_object(storage_options), progress=progress,
            executor=executor, ray_address=ray_address, ray_actors=ray_actors,
            break_lock=break_lock, lock_lease=lock_lease,
            references=ReferenceRules(
                local_root=local_root, allowed_domains=tuple(d.lower() for d in parse_list(allowed_domains)),
                allow_private_hosts=parse_list(allow_private_hosts), allowed_prefixes=parse_list(allowed_prefixes),
                max_bytes=parse_bytes(max_reference_bytes), timeout=reference_timeout,
            ),
        )
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
