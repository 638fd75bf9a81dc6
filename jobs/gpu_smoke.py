"""`make gpu-smoke`: the diffusers engine on CUDA with the tiny model, and a real model folder if given.

    python -m jobs.gpu_smoke [--model PATH] [--engine diffusers|tensorrt-llm] [--output DIR]

Without a CUDA GPU it prints why it skipped and exits 0. With one, it runs a text-to-video and an
image-to-video request through `tiny-random` on CUDA (bfloat16), checks that the same seed gives the
same file, and with `--model PATH` runs one Wan-default request (832x480, 81 frames, 50 steps)
through that folder. It prints one line per check and exits 1 if any failed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import click
import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.generate import GenerateOptions, run

TINY_ROWS = [
    dict(id="tiny-t2v", prompt="a red fox in the snow", size="64x64", num_frames=17, num_inference_steps=4, seed=1),
    dict(id="tiny-t2v-again", prompt="a red fox in the snow", size="64x64", num_frames=17, num_inference_steps=4,
         seed=1),
    dict(id="tiny-i2v", prompt="the bars ripple", size="64x64", num_frames=9, num_inference_steps=4, seed=2,
         input_reference="manifests/media/reference.png"),
]


def cuda_devices() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def run_rows(rows: list[dict], models: tuple[str, ...], engine: str, folder: str) -> list[dict]:
    names = list(dict.fromkeys(k for r in rows for k in r))
    queue = os.path.join(folder, "queue.parquet")
    pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in names} for r in rows]), queue)
    opts = GenerateOptions(queue=queue, output=os.path.join(folder, "out"), models=models, engine=engine,
                           device="cuda", progress="lines")
    run(opts)
    return pq.read_table(os.path.join(folder, "out", "records.parquet")).to_pylist()


def check(name: str, ok: bool, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return ok


@click.command()
@click.option("--model", "model", default=None, help="A real diffusers-format Wan folder to run once.")
@click.option("--engine", type=click.Choice(["diffusers", "tensorrt-llm"]), default="diffusers")
@click.option("--output", default=None, help="Where to keep the outputs (default: a temp folder).")
def main(model: str | None, engine: str, output: str | None) -> None:
    devices = cuda_devices()
    if not devices:
        print("SKIP gpu-smoke: torch sees no CUDA GPU on this machine; nothing to check")
        sys.exit(0)
    print(f"gpu-smoke on {devices[0]} ({len(devices)} GPU(s))", flush=True)
    root = output or tempfile.mkdtemp(prefix="gpu-smoke-")
    results = []
    if engine == "diffusers":
        results += tiny_checks(os.path.join(root, "tiny"))
    if model:
        results += real_checks(model, engine, os.path.join(root, "real"))
    sys.exit(0 if all(results) else 1)


def tiny_checks(folder: str) -> list[bool]:
    started = time.perf_counter()
    records = {r["id"]: r for r in run_rows(TINY_ROWS, ("tiny-random",), "diffusers", folder)}
    return [
        check("tiny-random on cuda",
              all(r["status"] == "completed" and r["device"] == "cuda" for r in records.values()),
              f"{len(records)} requests in {time.perf_counter() - started:.1f} s, "
              f"dtype {records['tiny-t2v']['dtype']}, "
              f"errors: {[r['error'] for r in records.values() if r['error']]}"),
        check("same seed, same file", records["tiny-t2v"]["sha256"] == records["tiny-t2v-again"]["sha256"],
              f"{records['tiny-t2v']['sha256']} vs {records['tiny-t2v-again']['sha256']}"),
    ]


def real_checks(model: str, engine: str, folder: str) -> list[bool]:
    row = dict(id="real", prompt="A cat walks on the grass, realistic, daylight", seed=42)
    started = time.perf_counter()
    record = run_rows([row], (model,), engine, folder)[0]
    return [check(f"{engine} with {model}", record["status"] == "completed",
                  f"{record['width']}x{record['height']}x{record['num_frames']} in {record['inference_time_s']} s "
                  f"(total {time.perf_counter() - started:.1f} s); error: {record['error']}; video: {record['url']}")]


if __name__ == "__main__":
    main()
