"""Many short clips: `make bench-short` or `python -m bench.short_clips [--count N]`.

The common training corpus is thousands of 5-20 s clips, where what a video costs beyond its
decoding (open, probe, converter, result assembly, IPC, shard writing) decides the throughput.
This runs the preprocess job with 1 worker over a manifest of N 720p clips (default 1,000) and
PyAV alone decoding and converting exactly the frames videoproc decodes (the same spans, the same
FrameConverter), in chunks taken in A-B-B-A order (--rounds, default 10) so that a machine whose
speed drifts weighs on both alike, and reports the wall-time ratio (target: at most 1.15x), the
median of the per-round ratios with its 95 % interval, and where the fixed cost per video goes.

The clips: DISTINCT encodes (one per whole second from 5 to 20 s, testsrc2 with noise, x264
ultrafast, keyframe every 2 s, cached in bench/.corpus/short/), each copied to as many files as
the manifest needs, so every row opens its own file; encoding 1,000 different clips would take
longer than the benchmark itself and decodes no differently.

The breakdown: cProfile of videoproc's per-video call (process_video, in this process) over the
same clips, the cumulative time of the library's own steps; from the job itself, the worker's own
seconds per video, the shard writing (in the main process, beside the worker) and the job's wall
time less the worker's: IPC, scheduling, pool start-up and whatever writing did not overlap.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import shutil
import sys
import tempfile
import time

import av
import pyarrow as pa
import pyarrow.parquet as pq

from bench import corpus
from bench.report import Timing, paired_speedup
from videoproc.common.testmedia import Clip
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.source.options import SourceOptions
from videoproc.video.options import VideoOptions
from videoproc.video.process import VideoTask, process_video
from videoproc.video.resize import FrameConverter, plan_resize

SIZE = (224, 224)
NUM_FRAMES = 16
DURATIONS = tuple(range(5, 21))  # seconds: one distinct encode each
TARGET = 1.15
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RESULTS = os.path.join(HERE, "results", "short_clips.md")

# The library's steps, by (file name, function name) in the profile of process_video.
STEPS = {
    "open (source, container, MP4 tables)": [("__init__.py", "open_uri"), ("process.py", "_open_container"),
                                              ("process.py", "_mp4_offsets")],
    "probe + sampling": [("process.py", "_timeline"), ("process.py", "_select")],
    "converter build": [("process.py", "_converter")],
    "decode + convert": [("decode.py", "decode")],
    "result assembly": [("process.py", "_ok"), ("process.py", "_encoded")],
}


def _clip(seconds: int) -> Clip:
    return Clip(name=f"short_720p_{seconds:02d}s.mp4", args=(
        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}", "-vf", "noise=alls=10:allf=t",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "3M", "-maxrate", "3M",
        "-bufsize", "6M", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
    ))


def build_clips(count: int, folder: str, log) -> list[str]:
    """`count` files: the distinct encodes made once, then copied under numbered names."""
    os.makedirs(folder, exist_ok=True)
    bases = []
    for seconds in DURATIONS:
        clip = _clip(seconds)
        if not os.path.exists(os.path.join(folder, clip.name)):
            log(f"making {clip.name} ...")
        bases.append(clip.make(folder))
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"clip{i:05d}.mp4")
        if not os.path.exists(path):
            shutil.copyfile(bases[i % len(bases)], path)
        paths.append(path)
    return paths


def run_job(manifest: str, output: str) -> dict:
    from videoproc.preprocess.job import run_preprocess

    options = PreprocessOptions(
        manifest=manifest, output=output, video=VideoOptions(num_frames=NUM_FRAMES, size=SIZE),
        run=RunOptions(workers=1, decoder_threads=1, shard_size=100, progress="off", overwrite=True),
    )
    return run_preprocess(options).summary


def worker_seconds(output: str) -> tuple[float, int]:
    """(seconds the worker spent on videos, frames it decoded) from the shards' completion stats."""
    folder = os.path.join(output, "_videoproc", "shards")
    seconds, frames = 0.0, 0
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            stats = json.load(f)
        seconds += stats.get("decode_s", 0.0)
        frames += stats.get("frames_decoded", 0)
    return seconds, frames


def output_indices(output: str) -> dict[str, list[int]]:
    table = pq.read_table(output, columns=["id", "frame_indices"])
    return dict(zip(table["id"].to_pylist(), table["frame_indices"].to_pylist(), strict=True))


def pyav_alone(path: str, targets: list[int]) -> int:
    """Decode only the frames from each target's preceding keyframe up to it, in one forward pass
    (the clips have no B-frames: packet order is frame order), converting the targets with
    videoproc's FrameConverter; returns the frames decoded."""
    wanted = set(targets)
    last = max(targets)
    convert = FrameConverter(plan_resize(SIZE[0], SIZE[1], size=SIZE, mode="stretch"), rotation=0, threads=1)
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "SLICE", 1
        packets = [p for p in container.demux(stream) if p.size]
        keyframes = [i for i, p in enumerate(packets) if p.is_keyframe]
        needed = set()
        for target in targets:
            start = max(k for k in keyframes if k <= target)
            needed.update(range(start, target + 1))
        decoded, codec = 0, stream.codec_context
        for index, packet in enumerate(packets[: last + 1]):
            if index not in needed:
                continue
            for frame in codec.decode(packet):
                decoded += 1
                if index in wanted:
                    convert(frame)
        codec.decode(None)
    return decoded


def profile_steps(paths: list[str]) -> tuple[dict[str, float], float]:
    """Per-video seconds of each library step, and of the whole process_video call, in this process."""
    video = VideoOptions(num_frames=NUM_FRAMES, size=SIZE)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for i, path in enumerate(paths):
        process_video(VideoTask(row=i, id=f"c{i}", uri=path), video=video, source=SourceOptions(), threads=1)
    profiler.disable()
    total = (time.perf_counter() - started) / len(paths)
    stats = pstats.Stats(profiler).stats
    steps = {}
    for step, functions in STEPS.items():
        steps[step] = sum(ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                          if (os.path.basename(file), name) in functions) / len(paths)
    steps["decode + convert"] -= steps["converter build"]  # the converter is built inside the decode call
    return steps, total


def measure(paths: list[str], scratch: str, *, rounds: int, log) -> tuple[dict, float, int, float, int, list]:
    """The job and PyAV alone over the same clips, in `rounds` chunks taken in A-B-B-A order (job,
    PyAV; PyAV, job; ...), so that a machine whose speed drifts over minutes (a shared VM) weighs on
    both sides alike. Each chunk's job is a whole run, pool start-up included.
    Returns (job summary totals, worker seconds, frames, PyAV seconds, PyAV frames, and each
    round's (job seconds, PyAV seconds))."""
    from bench.run import probe_only

    # Copies of one encode sample the same frames: probed once per distinct file.
    by_size: dict[int, list[int]] = {}
    for path in paths:
        if os.path.getsize(path) not in by_size:
            by_size[os.path.getsize(path)] = probe_only(path)[2]
    targets = {path: by_size[os.path.getsize(path)] for path in paths}
    job = {"elapsed_s": 0.0, "write_s": 0.0}
    worker_s = alone_s = 0.0
    frames = alone_frames = 0
    pairs = []
    size = -(-len(paths) // rounds)
    for r, start in enumerate(range(0, len(paths), size)):
        chunk = {f"c{i:05d}": paths[i] for i in range(start, min(start + size, len(paths)))}
        folder = os.path.join(scratch, f"round{r}")
        os.makedirs(folder)
        manifest = os.path.join(folder, "short.parquet")
        pq.write_table(pa.table({"id": list(chunk), "uri": list(chunk.values())}), manifest)
        output = os.path.join(folder, "out")
        if r % 2 == 0:
            log(f"round {r + 1}: videoproc, 1 worker, {len(chunk)} clips, then PyAV alone ...")
            summary = run_job(manifest, output)
            seconds, decoded = _pyav_alone(chunk, targets)
        else:
            log(f"round {r + 1}: PyAV alone, then videoproc, 1 worker, {len(chunk)} clips ...")
            seconds, decoded = _pyav_alone(chunk, targets)
            summary = run_job(manifest, output)
        if output_indices(output) != {i: targets[path] for i, path in chunk.items()}:
            raise RuntimeError("videoproc wrote other frame indices than bench.run.probe_only picks: the two "
                               "sides would not decode the same frames")
        alone_s += seconds
        alone_frames += decoded
        pairs.append((summary["elapsed_s"], seconds))
        job["elapsed_s"] += summary["elapsed_s"]
        job["write_s"] += summary["write_s"]
        seconds, decoded = worker_seconds(output)
        worker_s += seconds
        frames += decoded
    return job, worker_s, frames, alone_s, alone_frames, pairs


def _pyav_alone(chunk: dict[str, str], targets: dict[str, list[int]]) -> tuple[float, int]:
    started = time.perf_counter()
    decoded = sum(pyav_alone(path, targets[path]) for path in chunk.values())
    return time.perf_counter() - started, decoded


def render(count: int, job: dict, worker_s: float, frames: int, alone_s: float, alone_frames: int,
           steps: dict[str, float], profiled_s: float, profiled: int, pairs: list) -> str:
    elapsed = job["elapsed_s"]
    ratio = elapsed / alone_s
    # The job's time over PyAV's, round by round: how far the machine's drift moves the ratio.
    rounds = paired_speedup(Timing(walls=tuple(j for j, _ in pairs)), Timing(walls=tuple(a for _, a in pairs)))
    outside = elapsed - worker_s
    rows = [("videoproc job, 1 worker", elapsed), ("videoproc's worker, its videos only", worker_s),
            ("PyAV alone, same frames", alone_s)]
    lines = [
        f"# Many short clips: {count} clips of 720p H.264, 5-20 s ({len(DURATIONS)} distinct encodes)", "",
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.", "",
        "| run | wall s | wall ms per video |", "|---|---|---|",
        *[f"| {name} | {s:.2f} | {1000 * s / count:.1f} |" for name, s in rows], "",
        f"Frames decoded: videoproc {frames}, PyAV alone {alone_frames}.", "",
        f"- {'PASS' if ratio <= TARGET else 'FAIL'}: videoproc with 1 worker <= {TARGET}x PyAV alone "
        f"(wall {ratio:.3f}x; the worker's own video time {worker_s / alone_s:.3f}x)", "",
        f"Round by round ({len(pairs)} rounds, job / PyAV alone): median {rounds.ratio:.3f}x"
        + (f", 95 % interval [{rounds.low:.3f}-{rounds.high:.3f}]" if not math.isnan(rounds.low) else
           " (too few rounds for an interval)") + ".", "",
        f"## Where a video's time goes (per video, ms; profile of process_video over {profiled} clips)", "",
        "| step | ms per video |", "|---|---|",
        *[f"| {step} | {1000 * s:.2f} |" for step, s in steps.items()],
        f"| other inside process_video (source, checks, timing) | "
        f"{1000 * (profiled_s - sum(steps.values())):.2f} |",
        f"| process_video in all (under cProfile) | {1000 * profiled_s:.2f} |",
        "",
        "| in the job (1 worker) | ms per video |", "|---|---|",
        f"| the worker's time per video (process_video, no profiler) | {1000 * worker_s / count:.2f} |",
        f"| shard write (the main process, beside the worker's decoding) | {1000 * job['write_s'] / count:.2f} |",
        f"| job wall - worker time (IPC, scheduling, pool start-up, writes not hidden) | "
        f"{1000 * outside / count:.2f} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.short_clips", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="clips in the manifest (default 1000)")
    parser.add_argument("--rounds", type=int, default=10, help="chunks run in A-B-B-A order (default 10)")
    parser.add_argument("--profile", type=int, default=100, help="clips profiled in this process (default 100)")
    parser.add_argument("--corpus", default=os.path.join(corpus.DEFAULT_CORPUS_DIR, "short"))
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    if min(args.count, args.profile, args.rounds) < 1:
        sys.exit(f"--count, --profile and --rounds must be at least 1 (got {args.count}, {args.profile}, "
                 f"{args.rounds})")

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    paths = build_clips(args.count, args.corpus, log)
    with tempfile.TemporaryDirectory(prefix="videoproc-short-") as scratch:
        job, worker_s, frames, alone_s, alone_frames, pairs = measure(paths, scratch, rounds=args.rounds, log=log)
    profiled = paths[: args.profile]
    log(f"profile of {len(profiled)} clips ...")
    steps, profiled_s = profile_steps(profiled)
    text = render(args.count, job, worker_s, frames, alone_s, alone_frames, steps, profiled_s, len(profiled), pairs)
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w") as f:
        f.write(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
