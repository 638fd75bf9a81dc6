"""Reader throughput: frames per second from committed shards into uint8 tensors, against a plain
pyarrow read of the same files (bytes into Arrow memory, no tensors), on a synthetic output.

    python -m bench.reader_throughput [--rows 256] [--frames 16] [--size 224] [--workers 2]

The output is made once in a temporary folder with the real shard writer and completion markers,
so the readers see exactly what a preprocess run leaves; the frames are random bytes (decoding is
not measured here). Each reader is timed over --repeats passes and the best pass is reported.
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.common import storage
from videoproc.preprocess.runstate import RunState, plan_shards
from videoproc.preprocess.write import ShardWriter, output_schema


def make_output(folder: str, *, rows: int, frames: int, size: int, shard_size: int) -> None:
    state = RunState(storage.locate(folder))
    shards = plan_shards(rows, shard_size)
    state.begin(shards=shards, manifest={"rows": rows}, fingerprint={}, options={})
    schema = output_schema(pa.schema([pa.field("caption", pa.string())]))
    rng = np.random.default_rng(0)
    for shard in shards:
        writer = ShardWriter(schema=schema, final=state.data_file(shard))
        for i in range(shard.start, shard.stop):
            writer.add(_row(i, rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)))
        writer.close()
        writer.publish()
        state.commit(shard, {"ok": shard.stop - shard.start, "failed": 0, "rows": shard.stop - shard.start})


def _row(i: int, pixels: np.ndarray) -> dict:
    count = len(pixels)
    return {"id": f"row-{i:06d}", "uri": f"synthetic://{i}", "status": "ok", "frames": pixels.tobytes(),
            "shape": list(pixels.shape), "dtype": "uint8", "frame_indices": list(range(count)),
            "timestamps": [k / 8 for k in range(count)], "caption": f"row {i}"}


def pyarrow_read(folder: str) -> int:
    """The baseline: every shard read whole into Arrow; frames counted from the shape column."""
    frames = 0
    for path in sorted(glob.glob(os.path.join(folder, "data", "part-*.parquet"))):
        table = pq.read_table(path)
        frames += sum(shape[0] for shape in table.column("shape").to_pylist())
    return frames


def numpy_views(folder: str) -> int:
    from videoproc.read import iter_rows

    return sum(len(row["frames"]) for row in iter_rows(folder))


def dataset(folder: str, *, workers: int, layout: str = "THWC") -> int:
    from torch.utils.data import DataLoader

    from videoproc.read import FrameDataset

    loader = DataLoader(FrameDataset(folder, layout=layout), batch_size=None, num_workers=workers)
    return sum(int(row["frames"].shape[0]) for row in loader)


def best_rate(run: Callable[[], int], repeats: int) -> tuple[float, float]:
    best, frames = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        frames = run()
        best = min(best, time.perf_counter() - started)
    return frames / best, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224, help="frame side in pixels")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the multi-worker row")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vp-reader-bench-") as folder:
        make_output(folder, rows=args.rows, frames=args.frames, size=args.size, shard_size=args.shard_size)
        readers = {
            "pyarrow read_table (no tensors)": lambda: pyarrow_read(folder),
            "videoproc iter_rows (numpy views)": lambda: numpy_views(folder),
            "FrameDataset THWC, 0 workers": lambda: dataset(folder, workers=0),
            "FrameDataset TCHW, 0 workers": lambda: dataset(folder, workers=0, layout="TCHW"),
            f"FrameDataset THWC, {args.workers} workers": lambda: dataset(folder, workers=args.workers),
        }
        mib = args.rows * args.frames * args.size * args.size * 3 / 2**20
        print(f"{args.rows} rows x {args.frames} frames of {args.size}x{args.size} RGB ({mib:.0f} MiB of pixels), "
              f"best of {args.repeats}")
        print(f"{'reader':<36}{'frames/s':>12}{'MiB/s':>10}{'seconds':>10}")
        for name, run in readers.items():
            rate, seconds = best_rate(run, args.repeats)
            print(f"{name:<36}{rate:>12,.0f}{mib / seconds:>10,.0f}{seconds:>10.3f}")


if __name__ == "__main__":
    main()
