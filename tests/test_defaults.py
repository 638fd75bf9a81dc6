"""One source of defaults: the option records hold them, each flag's help shows them (rendered by
videoproc.common.flaghelp), and the README's and docs/generate.md's option tables state the same
values, so the four places cannot drift apart again. A flag not given leaves the record's default."""

from __future__ import annotations

import os
import re

import click
import pytest
from click.testing import CliRunner

from videoproc.common.flaghelp import as_bytes, as_size, doc, field_default, render
from videoproc.generate.command import generate
from videoproc.generate.config import KNOWN as GENERATE_KEYS
from videoproc.generate.options import GenerateOptions, Limits, ReferenceRules
from videoproc.preprocess.command import preprocess
from videoproc.preprocess.config import KNOWN as PREPROCESS_KEYS
from videoproc.preprocess.options import RunOptions
from videoproc.source.options import SourceOptions
from videoproc.video.options import VideoOptions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- the renderer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "shown"), [
    (512 * 2**20, "512MiB"), (4 * 2**30, "4GiB"), (64 * 2**10, "64KiB"), (1000, "1000"), (3 * 2**29, "1536MiB"),
])
def test_byte_counts_show_in_the_largest_exact_binary_unit(value, shown):
    assert as_bytes(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    (None, ""), ((), ""), ({}, ""), (False, ""), (60.0, "60"), (2.5, "2.5"), (3, "3"), ("auto", "auto"),
    (("video/*", "image/*"), "video/*,image/*"),
])
def test_defaults_render_as_typed_on_the_command_line(value, shown):
    assert render(value) == shown


def test_help_text_ends_with_the_records_default():
    assert doc(VideoOptions, "max_alloc", "Bytes.", show=as_bytes) == "Bytes. [default: 512MiB]"
    assert doc(VideoOptions, "size", "Size.", show=as_size) == "Size. [default: 224x224]"
    assert doc(VideoOptions, "fps", "Rate.") == "Rate."  # None: nothing to show
    assert doc(RunOptions, "workers", "Workers.", derived="CPU count") == "Workers. [default: CPU count]"
    assert field_default(SourceOptions, "storage_options") == {}


def test_a_literal_default_cannot_be_described_instead_of_shown():
    with pytest.raises(TypeError, match=r"RunOptions.shard_size defaults to 1000, a value to show, not to "
                                        r"describe; drop derived="):
        doc(RunOptions, "shard_size", "Rows.", derived="a thousand")


def test_a_help_naming_a_missing_field_is_refused():
    with pytest.raises(TypeError, match=r"VideoOptions has no field 'max_aloc'; the flag's help names the wrong"):
        doc(VideoOptions, "max_aloc", "Bytes.")
    with pytest.raises(TypeError, match=r"GenerateOptions.queue has no default"):
        field_default(GenerateOptions, "queue")


# -- the generated help ---------------------------------------------------------------------------


def _help(command: click.Command) -> str:
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0, result.output
    # click wraps the help, also after a hyphen ("--max-" / "alloc"): compare the words.
    return " ".join(re.sub(r"(?<=\w-)\n\s+", "", result.output).split())


@pytest.mark.parametrize("expected", [
    "--max-alloc TEXT Bytes one row may allocate, e.g. 1GiB. [default: 512MiB]",
    "--shard-size INTEGER Manifest rows per output shard. [default: 1000]",
    "--size TEXT Output WIDTHxHEIGHT in pixels, or 'original'. [default: 224x224]",
    "[default: 16 when --fps is not set]",
    f"--max-download-bytes TEXT Cap on bytes fetched per http(s) video. "
    f"[default: {as_bytes(SourceOptions().max_download_bytes)}]",
    f"--timeout FLOAT Seconds per video before it fails. [default: {render(RunOptions().timeout)}]",
    "[default: 2GiB + 4 x --max-alloc + 128MiB per decoder thread]",
])
def test_preprocess_help_shows_the_defaults(expected):
    assert expected in _help(preprocess)


@pytest.mark.parametrize("expected", [
    "--max-reference-bytes TEXT Cap on one input_reference image. [default: 32MiB]",
    f"Widest request, in pixels. [default: {Limits().max_width}]",
    f"[default: {render(ReferenceRules().timeout)}]",
    "--engine [diffusers|tensorrt-llm] The engine that runs the model. [default: diffusers]",
])
def test_generate_help_shows_the_defaults(expected):
    assert expected in _help(generate)


@pytest.mark.parametrize("command", [preprocess, generate])
def test_a_flag_not_given_reaches_the_command_as_not_given(command):
    """A click default would restate the record's value and hide "not given" from the job file."""
    context = command.make_context(command.name, ["input.parquet"])
    given = {name: value for name, value in context.params.items() if value not in (None, ())}
    assert given == {command.params[0].name: "input.parquet"}


@pytest.mark.parametrize(("command", "keys"), [(preprocess, PREPROCESS_KEYS), (generate, GENERATE_KEYS)])
def test_a_job_file_takes_exactly_the_flags(command, keys):
    flags = {p.name for p in command.params if isinstance(p, click.Option)} - {"config_file"}
    assert flags == set(keys)


# -- the documented tables ------------------------------------------------------------------------


def _table(path: str, heading: str) -> dict[str, str]:
    """{flag: default cell} of the first `| option | default | meaning |` table under `heading`;
    a row naming several flags gives each its own comma-separated default, or the one shared."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        lines = f.read().split(f"\n{heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        option, default = (cell.strip() for cell in line.strip("|").split("|")[:2])
        flags = re.findall(r"`(--[a-z][a-z-]*)", option)
        default = default.replace("`", "")
        parts = default.split(", ")
        rows.update(zip(flags, parts if len(parts) == len(flags) else [default] * len(flags), strict=True))
    return rows


def _help_defaults(command: click.Command) -> dict[str, str]:
    """{flag: what the table must say}: the help's [default: ...], 'off' for an on/off flag,
    'required' for a required option."""
    expected = {}
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        flag = max(param.opts, key=len)
        match = re.search(r"\[default: (.+)\]$", param.help or "")
        if param.is_flag:
            expected[flag] = "off"
        elif (param.help or "").endswith("Required."):
            expected[flag] = "required"
        else:
            expected[flag] = match[1] if match else ""
    return expected


@pytest.mark.parametrize(("command", "path", "heading"), [
    (preprocess, "README.md", "## Preprocess options"),
    (generate, "docs/generate.md", "## Flags"),
])
def test_option_tables_state_the_records_defaults(command, path, heading):
    documented = _table(path, heading)
    expected = _help_defaults(command)
    assert sorted(documented) == sorted(expected), f"{path}: flags missing from or extra in the table"
    for flag, default in expected.items():
        cell = documented[flag]
        if default == "required":
            assert cell.startswith("required"), f"{path}: {flag} is required (table says {cell!r})"
        else:
            assert cell == default, f"{path}: {flag} defaults to {default!r} (table says {cell!r})"
