"""Helpers shared by the generation tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.generate import GenerateOptions, run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_queue(path, rows: list[dict], schema: pa.Schema | None = None) -> str:
    """Write rows as a Parquet queue; every key of every row becomes a column (from_pylist alone
    takes the columns of the first row only)."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    table = pa.Table.from_pylist([{k: row.get(k) for k in names} for row in rows], schema=schema)
    pq.write_table(table, str(path))
    return str(path)


def read_records(output) -> list[dict]:
    return pq.read_table(os.path.join(str(output), "records.parquet")).to_pylist()


def run_queue(queue: str, output, *, models=("tiny-random",), **kwargs):
    opts = GenerateOptions(queue=queue, output=str(output), models=tuple(models), progress="off", **kwargs)
    return run(opts, log=sys.stderr)
