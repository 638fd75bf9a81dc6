"""Frame formats: bytes per row, write throughput and reader frames/s for each --frame-format.

    python -m bench.frame_formats [--frames 16] [--repeats 1]     (make bench-formats)

For each format, on the real clips (224x224) and on a generated 720p H.264 clip (kept at 1280x720):
a one-worker preprocess run (so frames/s is per core, encoding included), its shard writer's share
of the wall time, the mean stored bytes of `frames` per row and the ratio to raw, the reader's
frames/s into tensors through a DataLoader with 0 and 2 workers, and the bare decode rate of one
core (videoproc.read.decode over every ok row). The three targets of the issue are checked last.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.corpus import _x264, real_clips
from videoproc.common.testmedia import Clip
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.read.decode import decode_frames, stored_format
from videoproc.read.rows import binary_views
from videoproc.video.options import FrameFormat, VideoOptions

FORMATS = {
    "raw": FrameFormat(),
    "raw+zstd": FrameFormat(compression="zstd"),
    "png": FrameFormat(format="png"),
    "jpeg q90 444": FrameFormat(format="jpeg"),
    "jpeg q90 420": FrameFormat(format="jpeg", chroma="420"),
    "webp q90": FrameFormat(format="webp"),
}
CLIP_720P = Clip(name="h264_720p_4s_k1s.mp4", args=_x264(4, "1280x720", 30, "4M"))


def manifest(folder: str, uris: list[str]) -> str:
    path = os.path.join(folder, "manifest.parquet")
    pq.write_table(pa.table({"id": [os.path.basename(u) for u in uris], "uri": uris}), path)
    return path


def write(manifest_path: str, output: str, store: FrameFormat, *, frames: int, size) -> dict:
    options = PreprocessOptions(manifest=manifest_path, output=output,
                                video=VideoOptions(num_frames=frames, size=size, store=store),
                                run=RunOptions(workers=1, progress="off", overwrite=True))
    started = time.monotonic()
    summary = run_preprocess(options).summary
    wall = time.monotonic() - started
    return {"wall_s": wall, "write_share": summary["write_s"] / wall, "rows_ok": summary["rows_ok"]}


def stored_bytes(output: str) -> tuple[float, int]:
    """Mean bytes of `frames` per ok row, and the total frames."""
    table = pq.read_table(os.path.join(output, "data"), columns=["status", "frames", "shape"])
    table = table.filter(pc.equal(table["status"], "ok"))
    column = table["frames"].combine_chunks()
    values = pc.list_flatten(column) if pa.types.is_list(column.type) else column
    size = pc.sum(pc.binary_length(values)).as_py() or 0  # the payload, without Arrow's offsets
    frames = sum(shape[0] for shape in table["shape"].to_pylist())
    return size / max(len(table), 1), frames


def reader_fps(output: str, frames: int, *, workers: int) -> float:
    from torch.utils.data import DataLoader

    from videoproc.read import FrameDataset

    loader = DataLoader(FrameDataset(output), batch_size=None, num_workers=workers)
    started = time.monotonic()
    count = sum(row["frames"].shape[0] for row in loader)
    assert count == frames
    return count / (time.monotonic() - started)


def decode_fps(output: str) -> float:
    """Frames/s of the bare decode on this core, files already read into memory."""
    values = []
    for path in sorted(glob.glob(os.path.join(output, "data", "*.parquet"))):
        table = pq.read_table(path)
        fmt = stored_format(table.schema.metadata)
        for batch in table.to_batches():
            column = batch.column("frames")
            items = column.to_pylist() if fmt.frame_format != "raw" else binary_views(column)
            values += [(v, s) for v, s, st in zip(items, batch.column("shape").to_pylist(),
                                                 batch.column("status").to_pylist(), strict=True) if st == "ok"]
    started = time.monotonic()
    count = sum(decode_frames(v, s, fmt).shape[0] for v, s in values)
    return count / (time.monotonic() - started)


def bench_set(name: str, uris: list[str], *, frames: int, size, folder: str) -> list[dict]:
    path = manifest(folder, uris)
    results, raw_bytes = [], None
    for label, store in FORMATS.items():
        output = os.path.join(folder, label.replace(" ", "_"))
        written = write(path, output, store, frames=frames, size=size)
        per_row, total = stored_bytes(output)
        raw_bytes = raw_bytes or per_row
        result = {"set": name, "format": label, "bytes_per_row": round(per_row), "ratio": round(raw_bytes / per_row, 2),
                  "write_fps": round(total / written["wall_s"], 1), "write_share": round(written["write_share"], 4),
                  "read_fps_0": round(reader_fps(output, total, workers=0), 1),
                  "read_fps_2": round(reader_fps(output, total, workers=2), 1),
                  "decode_fps_core": round(decode_fps(output), 1)}
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--out", default="bench/results/frame_formats.json")
    args = parser.parse_args()
    real = [v.path for v in real_clips() if v.name != "corrupted.mp4"]
    with tempfile.TemporaryDirectory() as folder:
        os.makedirs(os.path.join(folder, "real"))
        os.makedirs(os.path.join(folder, "720p"))
        results = bench_set("real 224x224", real, frames=args.frames, size=(224, 224),
                            folder=os.path.join(folder, "real"))
        CLIP_720P.make(folder)
        results += bench_set("generated 720p", [os.path.join(folder, CLIP_720P.name)], frames=args.frames,
                             size=None, folder=os.path.join(folder, "720p"))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    targets(results)


def targets(results: list[dict]) -> None:
    jpeg = next(r for r in results if r["set"] == "real 224x224" and r["format"] == "jpeg q90 444")
    print(f"target jpeg q90 >= 8x smaller than raw on real footage: {jpeg['ratio']}x "
          f"{'met' if jpeg['ratio'] >= 8 else 'NOT met'}")
    print(f"target shard writing < 10% of wall time with jpeg: {100 * jpeg['write_share']:.2f}% "
          f"{'met' if jpeg['write_share'] < 0.1 else 'NOT met'}")
    print(f"target jpeg decode >= 5000 frames/s per core at 224: {jpeg['decode_fps_core']} "
          f"{'met' if jpeg['decode_fps_core'] >= 5000 else 'NOT met'}")


if __name__ == "__main__":
    main()
