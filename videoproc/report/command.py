"""The `inspect` click command; cli.py registers it on the `videoproc` group."""

from __future__ import annotations

import sys

import click

from videoproc.common.checks import parse_json_object
from videoproc.common.errors import OptionsError
from videoproc.common.exitcodes import ExitCode


@click.command("inspect")
@click.argument("output")
@click.option("--sheet", "sheet_path", default="contact_sheet.png", show_default=True,
              help="Where to write the contact-sheet PNG (local path or fsspec URL).")
@click.option("--html", "html_path", is_flag=False, flag_value="inspect.html", default=None,
              help="Also write a self-contained HTML report (default name inspect.html).")
@click.option("--sample", type=int, default=8, show_default=True, help="Rows (or generated videos) shown on the sheet.")
@click.option("--frames", "max_frames", type=int, default=8, show_default=True,
              help="Frames shown per row, spread evenly.")
@click.option("--max-side", type=int, default=128, show_default=True,
              help="Frames larger than this many pixels are subsampled by an integer step.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the row sample.")
@click.option("--storage-options", help="JSON object passed to fsspec for OUTPUT.")
def inspect_cmd(output: str, sheet_path: str, html_path: str | None, sample: int, max_frames: int, max_side: int,
                seed: int, storage_options: str | None) -> None:
    """Contact sheet, statuses and most common errors of a preprocess or generation OUTPUT."""
    from videoproc.read.units import ReadError
    from videoproc.report.output import format_table, inspect_output, write_html, write_sheet

    try:
        options = parse_json_object(storage_options)
        inspection = inspect_output(output, sample=sample, max_frames=max_frames, seed=seed, storage_options=options)
        if max_side < 1:
            raise ReadError(f"max_side must be a positive pixel count (got {max_side}); e.g. --max-side 128")
    except (ReadError, OptionsError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.REFUSED)
    click.echo(format_table(inspection))
    write_sheet(inspection, sheet_path, max_side=max_side)
    click.echo(f"contact sheet: {sheet_path} ({len(inspection.strips)} rows)")
    if html_path:
        write_html(inspection, html_path, max_side=max_side)
        click.echo(f"html report: {html_path}")
