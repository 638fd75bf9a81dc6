"""`videoproc inspect OUTPUT`: a contact sheet of a sample of rows, the statuses and the most common
errors, and optionally a self-contained HTML report. Works on preprocess outputs (frame strips of
the stored tensors) and generation outputs (poster-frame strips of the MP4 files)."""

from __future__ import annotations

import io

from videoproc.common import storage
from videoproc.read.units import ReadError
from videoproc.report.facts import Inspection, format_table
from videoproc.report.generated import inspect_generation, is_generation_output
from videoproc.report.html import render_html
from videoproc.report.preprocess import inspect_preprocess
from videoproc.report.sheet import Sheet, render

__all__ = ["Inspection", "format_table", "inspect_output", "sheet_png", "write_html", "write_sheet"]


def inspect_output(
    output: str, *, sample: int = 8, max_frames: int = 8, seed: int = 0, storage_options: dict | None = None
) -> Inspection:
    """Read what the report needs: every row's status, and the frames of `sample` ok rows chosen
    with `seed` (at most `max_frames` frames of each, spread evenly)."""
    _check_counts(sample=sample, max_frames=max_frames)
    out = storage.locate(output, storage_options=storage_options)
    if is_generation_output(out):
        return inspect_generation(out, sample=sample, max_frames=max_frames, seed=seed)
    if not storage.exists(out.child("_videoproc", "run.json")):
        raise ReadError(
            f"{output} is neither a preprocess output (no _videoproc/run.json) nor a generation output "
            "(no videos/ or records); pass the --output folder of a videoproc run"
        )
    return inspect_preprocess(output, sample=sample, max_frames=max_frames, seed=seed,
                              storage_options=storage_options or {})


def sheet_png(inspection: Inspection, *, max_side: int = 128) -> tuple[Sheet, bytes]:
    """The contact sheet and its PNG bytes; frames are subsampled to at most `max_side` pixels."""
    sheet = render(list(inspection.strips), max_side=max_side, empty_note=f"no ok rows in {inspection.output}")
    buffer = io.BytesIO()
    sheet.image.save(buffer, format="PNG")
    return sheet, buffer.getvalue()


def write_sheet(inspection: Inspection, path: str, *, max_side: int = 128,
                storage_options: dict | None = None) -> Sheet:
    """Write the contact sheet PNG to `path` (local path or fsspec URL)."""
    sheet, png = sheet_png(inspection, max_side=max_side)
    storage.write_bytes_atomic(storage.locate(path, storage_options=storage_options), png)
    return sheet


def write_html(inspection: Inspection, path: str, *, max_side: int = 128, storage_options: dict | None = None) -> None:
    """Write the self-contained HTML report (sheet embedded as base64 PNG) to `path`."""
    _, png = sheet_png(inspection, max_side=max_side)
    page = render_html(inspection, png=png)
    storage.write_bytes_atomic(storage.locate(path, storage_options=storage_options), page.encode())


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise ReadError(f"{name} must be a positive count (got {value!r}); e.g. --{name.replace('_', '-')} 8")
