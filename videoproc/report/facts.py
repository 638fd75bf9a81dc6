"""What `videoproc inspect` found in an output, and its text table for the terminal."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from videoproc.report.sheet import Strip

Kind = Literal["preprocess", "generate"]
FAILED_LIMIT = 1000  # failed rows kept for the report; the counts cover them all
ERROR_WIDTH = 160  # characters of an error message kept when counting the most common ones


@dataclass(frozen=True, kw_only=True)
class Inspection:
    """One output, seen from outside: row counts by status, the most common errors, the run's
    options, the failed rows (at most FAILED_LIMIT) and the strips of the contact sheet."""

    output: str
    kind: Kind
    statuses: dict[str, int]
    top_errors: dict[str, int]
    notes: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    failed: tuple[dict[str, Any], ...] = ()
    strips: tuple[Strip, ...] = ()


def count_errors(errors: Iterable[str | None], *, top: int = 10) -> dict[str, int]:
    """The most common error messages (cut to ERROR_WIDTH characters), most frequent first."""
    counts = collections.Counter(e[:ERROR_WIDTH] for e in errors if e)
    return dict(counts.most_common(top))


def format_table(inspection: Inspection) -> str:
    total = sum(inspection.statuses.values())
    lines = [f"{inspection.kind} output: {inspection.output}", f"{'status':<12}{'rows':>8}{'share':>9}"]
    for status, count in inspection.statuses.items():
        share = f"{100 * count / total:.1f}%" if total else "-"
        lines.append(f"{status:<12}{count:>8}{share:>9}")
    lines.append(f"{'total':<12}{total:>8}")
    lines += list(inspection.notes)
    if inspection.top_errors:
        lines.append("most common errors:")
        lines += [f"  {count:>6}  {error}" for error, count in inspection.top_errors.items()]
    return "\n".join(lines)
