"""Job files (TOML) shared by every stage's `--config`: the same names as the flags, with dashes or
underscores, read into a dict that the stage's flags then override.

A job file holds only what a scheduled job changes from the option records' defaults. break_lock is
refused in it: taking another run's lock is a one-off decision for when that run is gone.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from typing import Any

from videoproc.common.errors import OptionsError


def load_job_file(path: str, *, known: Collection[str]) -> dict[str, Any]:
    """The file's options, keys with underscores; refuses a missing or malformed file, break_lock,
    and any key not in `known` (naming the known ones)."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise OptionsError(f"job file {path} does not exist; check --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionsError(f"job file {path} is not valid TOML: {exc}") from exc
    values = {key.replace("-", "_"): value for key, value in raw.items()}
    if values.get("break_lock"):
        raise OptionsError(
            f"job file {path} sets break_lock, which takes the output's lock from another run: a one-off "
            "decision for when that run is gone, not a setting; remove it and pass --break-lock by hand"
        )
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise OptionsError(
            f"job file {path} has unknown option(s) {', '.join(unknown)}; known options: "
            f"{', '.join(sorted(set(known) - {'break_lock'}))}"
        )
    return values


def given_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags given on the command line: click leaves the others None (or () when repeatable)."""
    return {key: value for key, value in flags.items() if value is not None and value != ()}
