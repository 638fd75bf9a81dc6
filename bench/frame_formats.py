"""Frame formats: bytes per row, write throughput and reader frames/s for each --frame-format.

    python -m bench.frame_formats [--frames 16]     (make bench-formats)

For each format, on the real clips (224x224) and on a generated 720p H.264 clip (kept at 1280x720):
a one-worker preprocess run (so frames/s is per core, encoding included), its shard writer's share
of the wall time, the mean stored bytes of `frames` per row and the ratio to raw, the reader's
frames/s into tensors through a DataLoader with 0 and 2 workers, and the decode rate of one core:
the reader's own path (videoproc.read.rows.ok_rows, which decodes with videoproc.read.decode) over
row groups already in memory. Then the JPEG codec candidates (bench.codec_candidates) on the real
clips' frames, and the three targets of the issue. Results: markdown tables printed and written to
bench/results/frame_formats.md, the JSON beside it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench import codec_candidates
from bench.corpus import _x264, real_clips
from videoproc.common.testmedia import Clip
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.read import iter_rows
from videoproc.read.rows import ok_rows
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
    """Frames/s of one core through the reader's own decode path (ok_rows: the frames column to
    Python values, then videoproc.read.decode), the row groups already read into memory."""
    tables = [pq.read_table(path) for path in sorted(glob.glob(os.path.join(output, "data", "*.parquet")))]
    return codec_candidates.rate(lambda: sum(row["frames"].shape[0] for t in tables for row in ok_rows(t)),
                                 seconds=0.5)


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
    parser.add_argument("--out", default="bench/results/frame_formats.md", help="markdown; the JSON goes beside it")
    args = parser.parse_args()
    real = [v.path for v in real_clips() if v.name != "corrupted.mp4"]
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        os.makedirs(os.path.join(folder, "real"))
        os.makedirs(os.path.join(folder, "720p"))
        results = bench_set("real 224x224", real, frames=args.frames, size=(224, 224),
                            folder=os.path.join(folder, "real"))
        frames = np.concatenate([row["frames"] for row in iter_rows(os.path.join(folder, "real", "raw"))])
        CLIP_720P.make(folder)
        results += bench_set("generated 720p", [os.path.join(folder, CLIP_720P.name)], frames=args.frames,
                             size=None, folder=os.path.join(folder, "720p"))
    candidates = codec_candidates.measure(frames, seconds=0.2)
    for candidate in candidates:
        print(json.dumps(candidate), flush=True)
    record = {"load_average": {"start": load_start, "end": os.getloadavg()}, "formats": results,
              "codec_candidates": {"frames": list(frames.shape), "results": candidates}}
    text = render(record)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(record, f, indent=1)
    print(text)


def render(record: dict) -> str:
    load = record["load_average"]
    frames = record["codec_candidates"]["frames"]
    return "\n".join([
        "# Frame formats", "",
        f"Load average (1, 5, 15 min) at the start: {_load(load['start'])}; at the end: {_load(load['end'])}.", "",
        "| set | format | bytes/row | × smaller than raw | write frames/s | write share | read frames/s (0 workers) "
        "| read frames/s (2 workers) | decode frames/s/core |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {r['set']} | {r['format']} | {r['bytes_per_row']:,} | {r['ratio']} | {r['write_fps']:,} | "
          f"{100 * r['write_share']:.1f} % | {r['read_fps_0']:,.0f} | {r['read_fps_2']:,.0f} | "
          f"{_decode_cell(r)} |" for r in record["formats"]], "",
        f"## JPEG codec candidates: q90, {frames[0]} frames of {frames[2]}x{frames[1]} (the real clips), one core",
        "",
        "| chroma | codec | bytes/frame | PSNR dB | encode frames/s | decode frames/s |", "|---|---|---|---|---|---|",
        *[f"| {c['chroma']} | {c['codec']} | {c['bytes_per_frame']:,} | {c['psnr_db']} | {c['encode_fps']:,} | "
          f"{c['decode_fps']:,} |" for c in record["codec_candidates"]["results"]], "",
        *targets(record["formats"]), "",
    ])


def _decode_cell(result: dict) -> str:
    return "(a view)" if result["format"] == "raw" else f"{result['decode_fps_core']:,.0f}"


def _load(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def targets(results: list[dict]) -> list[str]:
    jpeg = next(r for r in results if r["set"] == "real 224x224" and r["format"] == "jpeg q90 444")
    return [
        f"- target jpeg q90 >= 8x smaller than raw on real footage: {jpeg['ratio']}x "
        f"{'met' if jpeg['ratio'] >= 8 else 'NOT met'}",
        f"- target shard writing < 10% of wall time with jpeg: {100 * jpeg['write_share']:.2f}% "
        f"{'met' if jpeg['write_share'] < 0.1 else 'NOT met'}",
        f"- target jpeg decode >= 5000 frames/s per core at 224: {jpeg['decode_fps_core']:,.0f} "
        f"{'met' if jpeg['decode_fps_core'] >= 5000 else 'NOT met'}",
    ]


if __name__ == "__main__":
    main()
