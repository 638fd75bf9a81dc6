"""Stage overhead around the engine call, as a fraction of engine time, with the tiny model.

    python -m bench.generate_overhead [--requests 8] [--size 64x64] [--frames 17] [--steps 4]

Runs a queue through `tiny-random` on the CPU twice into fresh folders (the first run pays the
imports and model build, reported apart) and reports, per phase, the seconds per request and the
fraction of engine time: queue read, validation, encode + publish, record write, consolidation.
The tiny model's engine call is far cheaper than a real model's, so these fractions are an upper
bound on what the stage adds to real generation.
"""

from __future__ import annotations

import os
import sys
import tempfile

import click
import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.generate import GenerateOptions, run

PHASES = ("queue_read", "validate", "encode", "record", "consolidate", "resume_scan")


def make_queue(folder: str, *, requests: int, size: str, frames: int, steps: int) -> str:
    rows = [dict(id=f"bench-{i:04d}", prompt=f"benchmark prompt {i}", size=size, num_frames=frames,
                 num_inference_steps=steps, seed=i) for i in range(requests)]
    path = os.path.join(folder, "queue.parquet")
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def measure(queue: str, output: str):
    return run(GenerateOptions(queue=queue, output=output, models=("tiny-random",), device="cpu", progress="off"),
               log=sys.stderr)


@click.command()
@click.option("--requests", default=8, show_default=True)
@click.option("--size", default="64x64", show_default=True)
@click.option("--frames", default=17, show_default=True)
@click.option("--steps", default=4, show_default=True)
def main(requests: int, size: str, frames: int, steps: int) -> None:
    folder = tempfile.mkdtemp(prefix="bench-generate-")
    queue = make_queue(folder, requests=requests, size=size, frames=frames, steps=steps)
    warm = measure(queue, os.path.join(folder, "warm"))
    summary = measure(queue, os.path.join(folder, "out"))
    engine = summary.phase_seconds["engine"]
    print(f"tiny-random, {requests} requests of {size} x {frames} frames x {steps} steps, CPU")
    print(f"first run (imports + model build): engine_open {warm.phase_seconds['engine_open']:.2f} s")
    print(f"{'phase':<14}{'s/request':>12}{'of engine':>12}")
    print(f"{'engine':<14}{engine / requests:>12.4f}{1.0:>12.1%}")
    overhead = 0.0
    for phase in PHASES:
        seconds = summary.phase_seconds.get(phase, 0.0)
        overhead += seconds
        print(f"{phase:<14}{seconds / requests:>12.4f}{seconds / engine:>12.2%}")
    print(f"{'overhead':<14}{overhead / requests:>12.4f}{overhead / engine:>12.2%}")


if __name__ == "__main__":
    main()
