"""Help text of a command-line flag, with the default read from the option record that holds it.

The option dataclasses are the one place a default is written. A flag's click default stays None
(so "not given" is told apart from "given the default", which job files need), and its help ends
with `[default: ...]` rendered from the dataclass field here; the README's option tables are
checked against that help by the tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

_BYTE_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def doc(record: type, name: str, text: str, *, show: Callable[[Any], str] | None = None,
        derived: str | None = None) -> str:
    """`text` followed by `[default: ...]`, the default of field `name` of dataclass `record`.

    show: renders the default (e.g. as_bytes); plain rendering otherwise (nothing for None, empty
    containers and booleans: a flag is off unless given).
    derived: says what the run works out when the field is left at None or 0 or comes from a
    factory (e.g. "CPU count"); refused for a field with a literal default, which must be shown.
    """
    shown = derived if derived is not None else render(field_default(record, name), show=show)
    if derived is not None:
        _check_derived(record, name)
    return f"{text} [default: {shown}]" if shown else text


def field_default(record: type, name: str) -> Any:
    """The value field `name` of dataclass `record` takes when it is not given."""
    field = _field(record, name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"{record.__name__}.{name} has no default; a required option needs no [default: ...]")


def render(value: Any, *, show: Callable[[Any], str] | None = None) -> str:
    """A default as a person writes it on the command line; '' when there is nothing to show."""
    if value is None or isinstance(value, bool) or value in ((), {}, ""):
        return ""
    if show is not None:
        return show(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def as_bytes(value: int) -> str:
    """536870912 -> '512MiB': the largest binary unit that divides the count exactly."""
    for unit, size in _BYTE_UNITS:
        if value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


def as_size(value: tuple[int, int]) -> str:
    """(224, 224) -> '224x224', the form --size takes."""
    return f"{value[0]}x{value[1]}"


def _field(record: type, name: str) -> dataclasses.Field:
    for field in dataclasses.fields(record):
        if field.name == name:
            return field
    raise TypeError(f"{record.__name__} has no field {name!r}; the flag's help names the wrong field")


def _check_derived(record: type, name: str) -> None:
    field = _field(record, name)
    if field.default_factory is dataclasses.MISSING and field.default not in (None, 0):
        raise TypeError(
            f"{record.__name__}.{name} defaults to {field.default!r}, a value to show, not to describe; "
            "drop derived= so the help renders it"
        )
