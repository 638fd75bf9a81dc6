"""Wall time of one preprocess job on a two-node Ray cluster vs the local process pool.

    python -m bench.ray_vs_local [--rows 100] [--shard-size 10] [--workers 2] [--address HOST:PORT]

The manifest repeats the repository's sample clips (real and generated) to --rows rows. Without
--address the benchmark starts a two-node, 1-CPU-per-node cluster on this machine (loopback only,
as the tests do) and stops it afterwards; with --address it uses that cluster as it is. Both runs
use the same options and their shard files are checked to be byte-identical. The Ray wall time
includes connecting to the cluster; cluster start-up is reported separately.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.common.testmedia import SAMPLE_CLIPS
from videoproc.preprocess.config import build_options
from videoproc.preprocess.job import run_preprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_DIR = os.path.join(ROOT, "manifests", "media", "real")
GENERATED_DIR = os.path.join(ROOT, "manifests", "media", "generated")


def main() -> None:
    args = _parse()
    work = tempfile.mkdtemp(prefix="vp-bench-", dir="/tmp")
    try:
        manifest = _manifest(work, args.rows)
        results = [_run("local", manifest, work, args)]
        cluster, started_s = _cluster(work, args)
        try:
            results.append(_run("ray", manifest, work, args, address=args.address or cluster.address))
        finally:
            if cluster is not None:
                cluster.stop()
        _check_identical(work)
        _print_table(results, args, started_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100, help="manifest rows (default 100)")
    parser.add_argument("--shard-size", type=int, default=10, help="rows per shard, one Ray task each (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="local pool processes (default 2)")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--size", default="224x224")
    parser.add_argument("--address", help="use this running cluster instead of starting one")
    return parser.parse_args()


def _manifest(work: str, rows: int) -> str:
    clips = sorted(os.path.join(REAL_DIR, f) for f in os.listdir(REAL_DIR) if not f.endswith(".md"))
    clips += [clip.make(GENERATED_DIR) for clip in SAMPLE_CLIPS]
    uris = list(islice(cycle(clips), rows))
    path = os.path.join(work, "manifest.parquet")
    pq.write_table(pa.table({"id": [f"row-{i:05d}" for i in range(rows)], "uri": uris}), path)
    return path


def _cluster(work: str, args: argparse.Namespace):
    if args.address:
        return None, 0.0
    from tests.servers.ray_cluster import start_cluster

    started = time.monotonic()
    cluster = start_cluster(os.path.join(work, "ray"))
    os.environ.update(cluster.driver_env())
    return cluster, time.monotonic() - started


def _run(executor: str, manifest: str, work: str, args: argparse.Namespace, address: str | None = None) -> dict:
    values = {
        "output": os.path.join(work, f"out-{executor}"), "num_frames": args.num_frames, "size": args.size,
        "shard_size": args.shard_size, "workers": args.workers, "progress": "off", "executor": executor,
    }
    if address:
        values["ray_address"] = address
    started = time.monotonic()
    report = run_preprocess(build_options(manifest=manifest, values=values))
    wall = time.monotonic() - started
    return {"executor": executor, "rows": report.summary["rows_total"], "ok": report.summary["rows_ok"],
            "shards": report.summary["shards_committed"], "wall_s": wall}


def _check_identical(work: str) -> None:
    folders = [os.path.join(work, f"out-{e}", "data") for e in ("local", "ray")]
    names = [sorted(os.listdir(f)) for f in folders]
    same = names[0] == names[1] and all(
        Path(folders[0], n).read_bytes() == Path(folders[1], n).read_bytes() for n in names[0]
    )
    if not same:
        raise SystemExit("the Ray and local outputs differ; this is a bug, not a benchmark result")


def _print_table(results: list[dict], args: argparse.Namespace, started_s: float) -> None:
    print(f"{args.rows} rows, {args.num_frames} frames at {args.size}, shard size {args.shard_size}, "
          f"{os.cpu_count()} cores" + (f"; cluster start-up {started_s:.1f} s (not counted)" if started_s else ""))
    print(f"{'executor':<10}{'rows':>6}{'ok':>6}{'shards':>8}{'wall s':>9}{'videos/s':>10}")
    for r in results:
        label = r["executor"] if r["executor"] == "ray" else f"local x{args.workers}"
        print(f"{label:<10}{r['rows']:>6}{r['ok']:>6}{r['shards']:>8}{r['wall_s']:>9.1f}"
              f"{r['rows'] / r['wall_s']:>10.2f}")
    print("outputs byte-identical: yes")


if __name__ == "__main__":
    main()
