"""The facts and the contact-sheet strips of a preprocess output, read from its committed shards.

Only the small columns of every row are read (id, uri, status, error); frames are read only for the
row groups that hold a sampled row.
"""

from __future__ import annotations

import random
from typing import Any

from videoproc.common import storage
from videoproc.preprocess.status import read_status
from videoproc.read.rows import UnitReader, ok_rows
from videoproc.read.units import Unit, list_units
from videoproc.report.facts import ERROR_WIDTH, FAILED_LIMIT, Inspection, count_errors
from videoproc.report.sheet import Strip, pick

INDEX_COLUMNS = ["id", "uri", "status", "error"]


def inspect_preprocess(output: str, *, sample: int, max_frames: int, seed: int, storage_options: dict) -> Inspection:
    units = list_units(output, storage_options=storage_options)
    reader = UnitReader(storage_options=storage_options)
    try:
        index = _row_index(reader, units)
        chosen = _sample(index, sample=sample, seed=seed)
        strips = _strips(reader, units, chosen, max_frames=max_frames)
    finally:
        reader.close()
    status = read_status(output, storage_options=storage_options)
    summary = status["summary"]
    failed = [r for r in index if r["status"] == "failed"]
    return Inspection(
        output=storage.locate(output, storage_options=storage_options).url, kind="preprocess",
        statuses={"ok": summary["rows_ok"], "failed": summary["rows_failed"],
                  **({"skipped": summary["rows_skipped"]} if summary.get("rows_skipped") else {})},
        top_errors=_top_errors(summary) or count_errors(r["error"] for r in failed),
        notes=_notes(summary), options=status["options"],
        failed=tuple({k: r[k] for k in INDEX_COLUMNS} for r in failed[:FAILED_LIMIT]), strips=tuple(strips),
    )


def row_strip(row: dict[str, Any], *, max_frames: int) -> Strip:
    """A row's strip: label "id  T frames HxW", `max_frames` frames evenly picked, their times."""
    frames = row["frames"]
    shown = pick(len(frames), max_frames)
    count, height, width = frames.shape[:3]
    return Strip(
        label=f"{row['id']}{_clip_label(row)}  {count} frames {width}x{height}",
        frames=tuple(frames[i] for i in shown),
        captions=tuple(f"{row['timestamps'][i]:.2f}s" for i in shown),
    )


def _clip_label(row: dict[str, Any]) -> str:
    return f" clip {row['clip_index']}" if row.get("clip_index") is not None else ""


def _row_index(reader: UnitReader, units: tuple[Unit, ...]) -> list[dict[str, Any]]:
    rows = []
    for number, unit in enumerate(units):
        table = reader.read_columns(unit, INDEX_COLUMNS)
        rows += [{**r, "unit": number, "row": i} for i, r in enumerate(table.to_pylist())]
    return rows


def _sample(index: list[dict[str, Any]], *, sample: int, seed: int) -> list[dict[str, Any]]:
    """`sample` ok rows chosen with `seed`, in output order (all of them when there are fewer)."""
    ok = [r for r in index if r["status"] == "ok"]
    if len(ok) <= sample:
        return ok
    return [ok[i] for i in sorted(random.Random(seed).sample(range(len(ok)), sample))]


def _strips(reader: UnitReader, units: tuple[Unit, ...], chosen: list[dict[str, Any]],
            *, max_frames: int) -> list[Strip]:
    strips = []
    for number in sorted({r["unit"] for r in chosen}):
        positions = [r["row"] for r in chosen if r["unit"] == number]
        table = reader.read(units[number]).take(positions)
        strips += [row_strip(row, max_frames=max_frames) for row in ok_rows(table)]
    return strips


def _top_errors(summary: dict[str, Any]) -> dict[str, int]:
    """Rows per error kind, each shown with its example message when the run recorded one."""
    examples = summary.get("error_examples", {})
    return {(f"{kind}: {examples[kind]}" if kind in examples else kind)[:ERROR_WIDTH]: count
            for kind, count in summary["top_errors"].items()}


def _notes(summary: dict[str, Any]) -> tuple[str, ...]:
    note = f"shards: {summary['shards_committed']} of {summary['shards_total']} committed"
    if summary["shards_pending"]:
        note += f" ({summary['shards_pending']} pending: their rows are not counted; re-run to finish)"
    return (note,)
