"""Which (shard, row group) units a reader may read, and which of them each reader takes.

A unit is one row group of one committed shard. Units are the grain of every split: all readers list
the same units in the same order, optionally shuffle them with the same seed, and reader k of n takes
every n-th one from position k. So the readers of one epoch (DataLoader workers times distributed
ranks) read disjoint sets whose union is every committed row, whatever the number of readers.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow.parquet as pq

from videoproc.common import storage
from videoproc.preprocess.runstate import DATA_DIR, RunState
from videoproc.preprocess.write import FORMAT_VERSION, METADATA_KEY, READABLE_VERSIONS

T = TypeVar("T")


class ReadError(ValueError):
    """An output that cannot be read: not a videoproc output, written in another format version, or
    holding frames that do not decode to their row's shape."""


@dataclass(frozen=True, kw_only=True)
class Unit:
    """Row group `row_group` (of `num_rows` rows) of the shard file at `url`."""

    url: str
    row_group: int
    num_rows: int


def list_units(outputs: str | Sequence[str], *, storage_options: dict | None = None) -> tuple[Unit, ...]:
    """Every row group of every committed shard of the outputs, in output, shard, row-group order.

    Shards without a completion marker are skipped (a run still writing, or one that stopped early);
    each shard's format version is checked against this reader's.
    """
    urls = [outputs] if isinstance(outputs, str) else list(outputs)
    if not urls:
        raise ReadError("no outputs given: pass one or more preprocess OUTPUT folders")
    return tuple(unit for url in urls for unit in _output_units(url, storage_options or {}))


def take(units: Sequence[Unit], *, reader: int, readers: int, seed: Hashable | None = None) -> list[Unit]:
    """The units of reader `reader` of `readers`: every `readers`-th unit of the order, which is
    shuffled first when a seed is given (the same seed gives every reader the same order)."""
    order = list(units)
    if seed is not None:
        random.Random(seed).shuffle(order)
    return order[reader::readers]


def shuffled(items: Iterable[T], *, size: int, seed: Hashable) -> Iterator[T]:
    """`items` in a seeded random order, holding at most `size` of them at a time."""
    rng = random.Random(seed)
    buffer: list[T] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        slot = rng.randrange(size)
        yield buffer[slot]
        buffer[slot] = item
    rng.shuffle(buffer)
    yield from buffer


def check_format(metadata: dict[bytes, bytes] | None, *, where: str) -> None:
    """Refuse a Parquet file whose videoproc layout key is missing or of a format version this
    reader does not read (it reads 1, raw frames, and 2, which names its frame format)."""
    raw = (metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ReadError(
            f"{where} has no {METADATA_KEY.decode()!r} key in its Parquet metadata, so it is not a "
            "videoproc shard; pass the OUTPUT folder of a `videoproc preprocess` run"
        )
    found = str(json.loads(raw).get("format_version"))
    if found not in READABLE_VERSIONS:
        raise ReadError(
            f"{where} has format version {found}, but this reader reads format versions "
            f"{', '.join(READABLE_VERSIONS)} (it writes {FORMAT_VERSION}); "
            f"read it with the videoproc release that wrote it, or re-run preprocess with this one"
        )


def _output_units(url: str, storage_options: dict[str, Any]) -> list[Unit]:
    state = RunState(storage.locate(url, storage_options=storage_options))
    run = state.load_run()
    if run is None:
        raise ReadError(
            f"no videoproc run found at {url} (no _videoproc/run.json); pass the OUTPUT folder of a "
            "`videoproc preprocess` run"
        )
    names = sorted(state.committed())
    # run.json records the plan's size; outputs of older versions list every shard instead.
    planned = run["plan"]["shards"] if "plan" in run else len(run.get("shards", []))
    _warn_pending(url, planned=planned, committed=len(names))
    units = []
    for name in names:
        units += _file_units(state.output.child(DATA_DIR, f"{name}.parquet"))
    return units


def _file_units(loc: storage.Location) -> list[Unit]:
    with loc.fs.open(loc.path, "rb") as f:
        meta = pq.read_metadata(f)
    check_format(meta.metadata, where=loc.url)
    return [Unit(url=loc.url, row_group=i, num_rows=meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]


def _warn_pending(url: str, *, planned: int, committed: int) -> None:
    if committed < planned:
        warnings.warn(
            f"{url}: {planned - committed} of {planned} shards are not committed yet and are skipped; "
            "re-run preprocess on it to finish them", stacklevel=3,
        )
