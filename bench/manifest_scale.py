"""Driver memory against manifest size: `python -m bench.manifest_scale [--rows N ...]`.

For each size, a synthetic manifest (id, uri of one tiny local clip, caption; row groups of 64k
rows) is written once under bench/results/manifests/, then a preprocess driver runs on it in a
fresh process with --workers 1 and stops as soon as the first shard's rows are read and its first
video is handed to the pool: the figures are about the driver (indexing, the streamed fingerprint
and duplicate check, the first shard), not about decoding 10M copies of a clip. Per size: the
driver's peak RSS (getrusage RUSAGE_SELF of the driver alone; the worker is another process) and
the seconds from the start of the run to the first shard. Results: a markdown table printed and
written to bench/results/manifest_scale.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "manifest_scale.md")
CLIP = os.path.join(ROOT, "manifests", "media", "real", "carphone_pristine.mp4")
ROW_GROUP = 1 << 16
SIZES = (100_000, 1_000_000, 10_000_000)


class FirstShard(Exception):
    """Raised by the driver's hook once the first shard has started: the measurement is done."""


def write_synthetic(path: str, rows: int, *, clip: str = CLIP) -> str:
    """id, uri (the same clip on every row) and caption, in row groups of ROW_GROUP rows."""
    schema = pa.schema([("id", pa.string()), ("uri", pa.string()), ("caption", pa.string())])
    tmp = path + ".tmp"
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            numbers = np.arange(start, start + n).astype(str)
            table = pa.table({
                "id": pa.array(np.char.add("v", numbers)),
                "uri": pa.array([clip] * n, pa.string()),
                "caption": pa.array(np.char.add("a short caption of video ", numbers)),
            }, schema=schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
    os.replace(tmp, path)
    return path


def measure(manifest: str, output: str) -> dict:
    """Run the driver on `manifest` in a fresh process up to its first shard; its figures."""
    cmd = [sys.executable, "-m", "bench.manifest_scale", "--drive", manifest, output]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"driver failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _drive(manifest: str, output: str) -> None:
    """The measured driver: a normal run whose first shard load records the time and stops it."""
    from videoproc.preprocess import shards
    from videoproc.preprocess.config import build_options
    from videoproc.preprocess.job import run_preprocess

    started = time.monotonic()
    load = shards.ShardWork.load
    seen: dict = {}

    def first_load(work, **kwargs):
        loaded = load(work, **kwargs)
        seen["first_shard_s"] = time.monotonic() - started
        seen["first_shard_rows"] = len(loaded.tasks)
        raise FirstShard

    shards.ShardWork.load = first_load
    options = build_options(manifest=manifest, values={
        "output": output, "num_frames": 2, "size": "16x16", "workers": 1, "progress": "off", "overwrite": True,
    })
    with contextlib.suppress(FirstShard):
        run_preprocess(options)
    print(json.dumps({**seen, "peak_rss_mb": round(_peak_rss_bytes() / 2**20, 1)}))


def _peak_rss_bytes() -> int:
    """This process's own peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux carries
    the parent's peak across fork and exec into it, so a driver started from a large process (a
    test run) would report its parent's memory."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--drive", nargs=2, metavar=("MANIFEST", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        _drive(*args.drive)
        return
    folder = os.path.join(HERE, "results", "manifests")
    os.makedirs(folder, exist_ok=True)
    lines = ["| manifest rows | driver peak RSS (MB) | first shard starts (s) |", "|---:|---:|---:|"]
    for rows in args.rows:
        path = os.path.join(folder, f"synthetic-{rows}.parquet")
        if not os.path.exists(path):
            t0 = time.monotonic()
            write_synthetic(path, rows)
            print(f"wrote {path} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        with tempfile.TemporaryDirectory() as out:
            result = measure(path, os.path.join(out, "out"))
        lines.append(f"| {rows:,} | {result['peak_rss_mb']:.0f} | {result['first_shard_s']:.1f} |")
        print(lines[-1], flush=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
