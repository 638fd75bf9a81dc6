"""A torch IterableDataset over preprocess outputs, split across DataLoader workers and ranks.

Every reader (rank r of R, DataLoader worker w of W) is reader r * W + w of R * W and takes every
(R * W)-th (shard, row group) unit of one shared order, so an epoch reads each committed ok row once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from videoproc.read.rows import Layout, UnitReader, arrange, check_columns, check_layout, ok_rows
from videoproc.read.units import ReadError, Unit, list_units, shuffled, take

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - torch is the optional `read` extra
    raise ImportError("videoproc.read.FrameDataset needs torch: pip install 'videoproc[read]' (or use "
                      "videoproc.read.iter_rows, the numpy reader)") from exc


class FrameDataset(IterableDataset):
    """The ok rows of one or more preprocess outputs (local paths or fsspec URLs) as dicts:

    frames         uint8 tensor (T, H, W, 3), or (T, 3, H, W) with layout="TCHW"; contiguous
    timestamps     float64 tensor, seconds;  frame_indices  int64 tensor
    id, and the manifest's pass-through columns, as Python values; `columns` adds fixed columns.

    Only committed shards are read, listed once here so that every reader splits the same list.
    rank and world_size default to torch.distributed's when it is initialized (create the dataset
    after init_process_group), else 0 and 1. Ranks can get different row counts (the split is by
    row group, up to 32 rows); when a training step needs the same count on every rank, stop at the
    smallest. shuffle=True shuffles the units with `seed` and the epoch (call set_epoch(e) before
    each epoch; persistent DataLoader workers keep the epoch they started with), and the rows of
    each reader within a buffer of `buffer_size` rows.
    """

    def __init__(
        self,
        outputs: str | Sequence[str],
        *,
        layout: Layout = "THWC",
        columns: Sequence[str] = (),
        shuffle: bool = False,
        buffer_size: int = 16,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        storage_options: dict | None = None,
    ) -> None:
        check_layout(layout)
        check_columns(columns)
        _check_buffer(buffer_size)
        self.layout, self.columns, self.shuffle = layout, tuple(columns), shuffle
        self.buffer_size, self.seed, self.epoch = buffer_size, seed, 0
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self.storage_options = storage_options or {}
        self.units: tuple[Unit, ...] = list_units(outputs, storage_options=self.storage_options)

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch's shuffle order (no effect without shuffle=True)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        reader, readers = self._reader()
        seed = f"{self.seed}:{self.epoch}" if self.shuffle else None
        rows = self._rows(take(self.units, reader=reader, readers=readers, seed=seed))
        if self.shuffle and self.buffer_size > 1:
            rows = shuffled(rows, size=self.buffer_size, seed=f"{seed}:{reader}")
        return rows

    def _reader(self) -> tuple[int, int]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        return self.rank * workers + worker, self.world_size * workers

    def _rows(self, units: list[Unit]) -> Iterator[dict[str, Any]]:
        reader = UnitReader(storage_options=self.storage_options)
        try:
            for unit in units:
                for row in ok_rows(reader.read(unit, columns=self.columns)):
                    yield self._tensors(row)
        finally:
            reader.close()

    def _tensors(self, row: dict[str, Any]) -> dict[str, Any]:
        row["frames"] = _frames_tensor(arrange(row["frames"], self.layout), shared=get_worker_info() is not None)
        row["timestamps"] = torch.from_numpy(np.array(row["timestamps"], np.float64))
        row["frame_indices"] = torch.from_numpy(np.array(row["frame_indices"], np.int64))
        return row


def _frames_tensor(frames: np.ndarray, *, shared: bool) -> torch.Tensor:
    """The one copy of the pixels: from the Arrow buffer into memory the tensor owns, in its layout.
    In a DataLoader worker that memory is shared memory, so handing the tensor to the main process
    sends a handle instead of copying the pixels a second time."""
    tensor = torch.empty(frames.shape, dtype=torch.uint8)
    if shared:
        tensor.share_memory_()
    np.copyto(tensor.numpy(), frames)
    return tensor


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """The explicit rank and world size, else torch.distributed's when initialized, else (0, 1)."""
    if (rank is None) != (world_size is None):
        raise ReadError(f"rank and world_size go together (got rank={rank}, world_size={world_size}); "
                        "pass both, or neither to use torch.distributed's")
    if rank is None:
        dist = torch.distributed
        initialized = dist.is_available() and dist.is_initialized()
        rank, world_size = (dist.get_rank(), dist.get_world_size()) if initialized else (0, 1)
    if not 0 <= rank < world_size:
        raise ReadError(f"rank must be in [0, world_size) (got rank={rank}, world_size={world_size})")
    return rank, world_size


def _check_buffer(buffer_size: int) -> None:
    if buffer_size < 1:
        raise ReadError(f"buffer_size must be at least 1 row (got {buffer_size}); 1 turns row shuffling off")
