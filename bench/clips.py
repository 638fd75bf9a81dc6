"""The clip-mode benchmark: `python -m bench.clips [--only NAME ...]`.

On the 600 s 720p files of the corpus, clip mode (--clips-per-video 8 --clip-frames 16
--clip-fps 8, 224x224) against a naive decode from frame 0 to the last frame of the last clip
(bench.baselines), run alternately. For each file: the frames clip mode decoded against the
keyframe bound of the union of its clips (it must stay within it, up to B-frame reordering), the
speedup over the naive decode (the acceptance asks for 5x or more), and whether both return the
same frames. Results: a markdown table printed and written to bench/results/clips.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from bench import baselines, corpus
from videoproc.source.options import SourceOptions
from videoproc.video.options import ClipOptions, VideoOptions
from videoproc.video.process import VideoResult, VideoTask, process_video

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "clips.md")
SIZE = (224, 224)
CLIPS = ClipOptions(frames=16, fps=8.0, per_video=8)
BOUND_SLACK = 1.05  # B-frames decoded past a target before the decoder sees it is the last


def run_clips(path: str) -> VideoResult:
    video = VideoOptions(size=SIZE, clips=CLIPS)
    return process_video(VideoTask(row=0, id="bench", uri=path), video=video, source=SourceOptions(), threads=1)


def measure(name: str, path: str, repeats: int, log) -> dict:
    clips = run_clips(path)
    assert clips.status == "ok", clips.error
    targets = list(clips.frame_indices)
    times: dict[str, list[float]] = {"clips": [], "naive": []}
    naive = None
    for _ in range(repeats):  # alternate, so a change in machine load hits both alike
        started = time.perf_counter()
        clips = run_clips(path)
        times["clips"].append(time.perf_counter() - started)
        started = time.perf_counter()
        naive = baselines.naive_decode(path, targets, size=SIZE)
        times["naive"].append(time.perf_counter() - started)
    frames = np.frombuffer(clips.frames, np.uint8).reshape(clips.shape)
    clip_s, naive_s = statistics.median(times["clips"]), statistics.median(times["naive"])
    row = {
        "file": name, "clips": len(clips.clip_windows), "frames": len(targets),
        "decoded": clips.frames_decoded, "bound": clips.frames_decoded_min, "naive_decoded": naive.frames_decoded,
        "within_bound": clips.frames_decoded <= BOUND_SLACK * clips.frames_decoded_min,
        "clips_s": clip_s, "naive_s": naive_s, "speedup": naive_s / clip_s,
        "same_frames": bool(np.array_equal(frames, naive.frames)),
    }
    log(f"{name}: {row}")
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| file | clips x frames | decoded / bound | within bound | naive decoded | clips s | naive s | speedup "
        "| same frames |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['file']} | {r['clips']} x {r['frames'] // r['clips']} | {r['decoded']} / {r['bound']} | "
            f"{'yes' if r['within_bound'] else 'NO'} | {r['naive_decoded']} | {r['clips_s']:.2f} | "
            f"{r['naive_s']:.2f} | {r['speedup']:.1f}x | {'yes' if r['same_frames'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="files whose names contain one of these")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", default=corpus.DEFAULT_CORPUS_DIR, help="folder caching the generated clips")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    videos = [v for v in corpus.full_corpus() if corpus.LONG in v.tags]
    videos = corpus.select(videos, args.only)
    os.makedirs(args.corpus, exist_ok=True)
    paths = corpus.build(videos, args.corpus)
    rows = [measure(v.name, paths[v.name], args.repeats, print) for v in videos]
    text = (f"Clip mode: --clips-per-video {CLIPS.per_video} --clip-frames {CLIPS.frames} --clip-fps "
            f"{CLIPS.fps:g} --size {SIZE[0]}x{SIZE[1]}, one decoder thread, median of {args.repeats}\n\n"
            f"{table(rows)}\n")
    print(text)
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "w") as f:
        f.write(text)
    return rows


if __name__ == "__main__":
    main()
