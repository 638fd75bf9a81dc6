"""The `videoproc inspect --html` page: one self-contained file (styles inline, the sheet as a
base64 PNG), so it can be mailed, attached to a ticket or opened from object storage offline."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from videoproc.report.facts import Inspection

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1d; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f4f4f4; padding: 8px; overflow-x: auto; }
img { max-width: 100%; image-rendering: pixelated; }
"""


def render_html(inspection: Inspection, *, png: bytes) -> str:
    title = f"videoproc inspect: {inspection.output}"
    parts = [
        f"<h1>{_e(title)}</h1>",
        "<h2>Contact sheet</h2>",
        f'<img alt="contact sheet of {len(inspection.strips)} rows" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">',
        "<h2>Statuses</h2>", _status_table(inspection),
        *(f"<p>{_e(note)}</p>" for note in inspection.notes),
        "<h2>Most common errors</h2>", _table(["count", "error"], [[c, e] for e, c in inspection.top_errors.items()]),
        "<h2>Options of the run</h2>",
        f"<pre>{_e(json.dumps(inspection.options, indent=2, sort_keys=True, default=str))}</pre>",
        f"<h2>Failed rows ({len(inspection.failed)} shown)</h2>", _failed_table(inspection.failed),
    ]
    head = f'<meta charset="utf-8"><title>{_e(title)}</title><style>{STYLE}</style>'
    return f"<!doctype html>\n<html><head>{head}</head><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def _status_table(inspection: Inspection) -> str:
    total = sum(inspection.statuses.values())
    rows = [[s, c, f"{100 * c / total:.1f}%" if total else "-"] for s, c in inspection.statuses.items()]
    return _table(["status", "rows", "share"], rows + [["total", total, ""]])


def _failed_table(failed: tuple[dict[str, Any], ...]) -> str:
    if not failed:
        return "<p>none</p>"
    columns = list(failed[0])
    return _table(columns, [[row.get(c) for c in columns] for row in failed])


def _table(header: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="n">{value}</td>' if numeric else f"<td>{_e('' if value is None else value)}</td>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
