"""Reading preprocess outputs for training: a torch dataset and a plain numpy reader.

    FrameDataset   torch IterableDataset, split across DataLoader workers and distributed ranks
    iter_rows      numpy iterator over the ok rows, in order
    list_units     the (shard, row group) units of the committed shards, format version checked

Importing this package does not import torch; `FrameDataset` imports it on first use.
"""

from __future__ import annotations

from typing import Any

from videoproc.read.numpy_reader import iter_rows
from videoproc.read.units import ReadError, Unit, check_format, list_units

__all__ = ["FrameDataset", "ReadError", "Unit", "check_format", "iter_rows", "list_units"]


def __getattr__(name: str) -> Any:
    if name == "FrameDataset":
        from videoproc.read.dataset import FrameDataset

        return FrameDataset
    raise AttributeError(f"module 'videoproc.read' has no attribute {name!r}")
