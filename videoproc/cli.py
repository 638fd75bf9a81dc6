"""The `videoproc` console script: the click group that gathers each stage's commands.

preprocess and status: videoproc.preprocess.command (its docstring lists the exit codes);
generate: videoproc.generate.command; inspect: videoproc.report.command.
"""

from __future__ import annotations

import click

from videoproc.generate.command import generate
from videoproc.preprocess.command import preprocess, status
from videoproc.report.command import inspect_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="videoproc")
def main() -> None:
    """Turn video into training data."""


for _command in (preprocess, status, inspect_cmd, generate):
    main.add_command(_command)
