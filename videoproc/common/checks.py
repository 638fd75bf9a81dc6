"""Parsers and validators shared by every stage's options: byte counts, JSON objects, lists, and the
checks that raise OptionsError with the value, the rule and the fix."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from videoproc.common.errors import OptionsError

_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_json_object(value: Any, *, name: str = "--storage-options") -> dict[str, Any]:
    """A JSON object given as text (a flag) or already parsed (a job file); {} for nothing."""
    if isinstance(value, dict):
        return value
    if value is None or value == "":
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise OptionsError(f"{name} must be a JSON object (got {value!r}: {exc.msg}); "
                           f"e.g. '{{\"anon\": true}}'") from None
    if not isinstance(parsed, dict):
        raise OptionsError(f"{name} must be a JSON object like '{{\"anon\": true}}' (got {value!r})")
    return parsed


def parse_bytes(text: str | int) -> int:
    """'512MiB' -> 536870912. Accepts plain integers and k/M/G (1000) or KiB/MiB/GiB (1024)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(i?)b?", str(text).strip().lower())
    if not match or (match[3] and not match[2]):
        raise OptionsError(f"expected a byte count such as 536870912 or 512MiB (got {text!r})")
    unit = match[2] + ("ib" if match[3] else "")
    return int(float(match[1]) * _SIZE_UNITS[unit])


def parse_list(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """'a, b' (a flag) or ['a', 'b'] (a job file) -> ('a', 'b'), blanks dropped."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(item).strip() for item in items if str(item).strip())


def check_positive_int(name: str, value: Any, *, hint: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise OptionsError(f"{name} must be a positive integer, 1 or more (got {value!r}); {hint}")


def check_positive_float(name: str, value: Any, *, hint: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise OptionsError(f"{name} must be a positive finite number (got {value!r}); {hint}")


def check_choice(name: str, value: Any, choices: Any) -> None:
    """`value` must be one of the Literal type `choices`' arguments."""
    allowed = choices.__args__
    if value not in allowed:
        raise OptionsError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
