"""A plain numpy reader: the ok rows of one or more preprocess outputs, in order, without torch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from videoproc.read.rows import Layout, UnitReader, arrange, check_columns, check_layout, ok_rows
from videoproc.read.units import list_units


def iter_rows(
    outputs: str | Sequence[str],
    *,
    layout: Layout = "THWC",
    columns: Sequence[str] = (),
    copy: bool = False,
    storage_options: dict | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield each ok row of the committed shards of `outputs` as a dict of numpy values.

    `frames` is a uint8 array (T, H, W, 3), or (T, 3, H, W) with layout="TCHW". By default it is a
    read-only view of the shard's Arrow buffer (no copy; it keeps that row group alive while held);
    copy=True gives a writable, C-contiguous array of its own. `timestamps` (seconds, float64) and
    `frame_indices` (int64) are arrays; `id` and the manifest's pass-through columns are Python
    values; `columns` adds fixed output columns such as "uri" or "source_fps".
    """
    check_layout(layout)
    check_columns(columns)
    reader = UnitReader(storage_options=storage_options)
    try:
        for unit in list_units(outputs, storage_options=storage_options):
            for row in ok_rows(reader.read(unit, columns=columns)):
                frames = arrange(row["frames"], layout)
                row["frames"] = frames.copy(order="C") if copy else frames
                yield row
    finally:
        reader.close()
