"""The benchmark of exact sampling: `make bench` or `python -m bench.run [--quick] [--only NAME ...]`.

In one invocation, on the same files: videoproc in exact and keyframe mode, a naive decode from
frame 0 (bench.baselines, the plain PyAV peer), the FFmpeg CLI's full decode, and the installed peers
(bench.peers: decord with one thread and its default threading, against videoproc with one thread
and its own default threading) on the same indices, their frames compared with videoproc's. Methods
are interleaved run by run, so a change in machine load hits all of them alike. Then the preprocess
job's throughput with 1 and 2 workers, and the peak memory of a worker on a short and a long video.
Results: a markdown table printed and written to bench/results/latest.md (plus latest.json).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import math
import os
import platform
import pstats
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import baselines, corpus, peers, report
from bench.report import BenchResults, FileResult, RssResult, ThroughputResult, Timing
from videoproc.common.testmedia import ffmpeg_exe
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.source.options import SourceOptions
from videoproc.video.options import SeekMode, VideoOptions
from videoproc.video.probe import probe
from videoproc.video.process import VideoResult, VideoTask, process_video
from videoproc.video.sample import select_indices

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RESULTS = os.path.join(HERE, "results", "latest.md")
NUM_FRAMES = 16
SIZE = (224, 224)
FAST_ROUND_S = 2.0  # a round of all methods faster than this is repeated more: timer noise dominates
FAST_ROUNDS = 21
MIN_SAMPLE_S = 0.2  # on fast files one sample is the mean of enough calls in a row to last this long
PARTS = ("files", "throughput", "rss", "profile")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """One benchmark invocation: what to measure and how often."""

    quick: bool
    repeats: int
    parts: tuple[str, ...]
    throughput_videos: int
    shard_size: int
    work_dir: str


# -- one file, four methods --------------------------------------------------------------------


def video_options(seek_mode: SeekMode) -> VideoOptions:
    return VideoOptions(num_frames=NUM_FRAMES, size=SIZE, seek_mode=seek_mode)


def run_videoproc(path: str, seek_mode: SeekMode, *, threads: int = 1,
                  size: tuple[int, int] | None = SIZE) -> VideoResult:
    task = VideoTask(row=0, id="bench", uri=path)
    video = dataclasses.replace(video_options(seek_mode), size=size)
    return process_video(task, video=video, source=SourceOptions(), threads=threads)


# videoproc's default with one worker: one decoder thread per core (RunOptions.threads_per_decoder).
DEFAULT_THREADS = max(1, os.cpu_count() or 1)


def probe_only(path: str) -> tuple[int, int, list[int], str]:
    """(frames, keyframes, sampled indices, codec) from videoproc's probe: the naive baseline's targets."""
    with av.open(path, metadata_errors="ignore") as container:
        info = probe(container)
    targets = select_indices(info.timestamps, duration=info.duration, num_frames=NUM_FRAMES, fps=None, max_frames=None)
    return info.num_frames, len(info.keyframes), targets, info.codec


def timed(fn: Callable[[], object], calls: int = 1) -> tuple[float, float, object]:
    """(wall s, CPU s of this process and its waited-for children, per call over `calls` calls in a
    row, and the last call's value or the exception)."""
    wall, cpu = time.perf_counter(), _cpu_now()
    value: object = None
    for _ in range(calls):
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - a failing method is a result to report, not a crash
            value = exc
    return (time.perf_counter() - wall) / calls, (_cpu_now() - cpu) / calls, value


def _cpu_now() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure_file(video: corpus.BenchVideo, path: str, settings: Settings, log) -> FileResult:
    try:
        num_frames, keyframes, targets, codec = probe_only(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is still a row in the report
        return _unreadable(video, exc)
    methods: dict[str, Callable[[], object]] = {
        "exact": lambda: run_videoproc(path, "exact"),
        "keyframe": lambda: run_videoproc(path, "keyframe"),
        "naive": lambda: baselines.naive_decode(path, targets, size=SIZE),
        "ffmpeg": lambda: baselines.ffmpeg_null(path),
        "probe": lambda: probe_only(path),
        "exact_auto": lambda: run_videoproc(path, "exact", threads=DEFAULT_THREADS),
    }
    peer_methods = peers.methods(path, targets, size=SIZE)
    samples, last = _rounds(methods | peer_methods, settings)
    timings = {name: _timing(samples[name], last[name]) for name in methods | peer_methods}
    log("  " + ", ".join(f"{n} {t.wall_s:.3f}s" for n, t in timings.items()))
    exact, keyframe, naive = last["exact"], last["keyframe"], last["naive"]
    return FileResult(
        name=video.name, description=video.description, tags=tuple(sorted(video.tags)), codec=codec,
        num_frames=num_frames, keyframes=keyframes, sampled=len(targets),
        **{name: timings[name] for name in methods},
        peers={name: timings[name] for name in peer_methods},
        peer_frames=compare_peers(path, targets, num_frames, exact) if peer_methods else {},
        status=_status(exact),
        frames_decoded=getattr(exact, "frames_decoded", 0),
        frames_decoded_min=getattr(exact, "frames_decoded_min", 0),
        keyframe_frames_decoded=getattr(keyframe, "frames_decoded", 0),
        naive_frames_decoded=getattr(naive, "frames_decoded", 0),
        exact_vs_naive_psnr=_compare(exact, naive),
    )


def _rounds(methods: dict[str, Callable[[], object]], settings: Settings):
    """Run every method once per round, in a shuffled order (seeded) so that no method always
    follows the FFmpeg subprocess or a cache-warming neighbour. Fast files get more rounds, each
    sample the mean of several calls, so a few milliseconds of work are not measured at the timer's
    and scheduler's noise; their first, calibrating round is not counted."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    last: dict[str, object] = {}
    calls = dict.fromkeys(methods, 1)
    order = list(methods)
    shuffle = random.Random(0).shuffle
    rounds, done, calibrating = settings.repeats, 0, not settings.quick
    while done < rounds:
        round_s = 0.0
        for name in order:
            wall, cpu, value = timed(methods[name], calls[name])
            samples[name].append((wall, cpu))
            last[name] = value
            round_s += wall * calls[name]
        done += 1
        shuffle(order)
        if calibrating and round_s < FAST_ROUND_S:
            calls = {name: max(1, math.ceil(MIN_SAMPLE_S / max(samples[name][0][0], 1e-6))) for name in methods}
            samples = {name: [] for name in methods}
            rounds, done = FAST_ROUNDS, 0
        calibrating = False
    return samples, last


def _timing(samples: list[tuple[float, float]], last: object) -> Timing:
    if isinstance(last, Exception):
        return Timing(runs=len(samples), error=f"{type(last).__name__}: {last}")
    return Timing(
        wall_s=statistics.median(s[0] for s in samples),
        cpu_s=statistics.median(s[1] for s in samples),
        runs=len(samples),
        walls=tuple(s[0] for s in samples),
    )


def _status(result: object) -> str:
    if isinstance(result, Exception):
        return f"{type(result).__name__}: {result}"
    return "ok" if result.status == "ok" else str(result.error)


def _compare(exact: object, naive: object) -> float | None:
    """PSNR of exact mode's frames against the naive decode (inf when identical); None if not comparable."""
    if not isinstance(exact, VideoResult) or exact.status != "ok" or not isinstance(naive, baselines.NaiveResult):
        return None
    if exact.source.get("rotation"):
        return None  # exact mode turns the picture upright; the naive loader does not
    frames = np.frombuffer(exact.frames, np.uint8).reshape(exact.shape)
    if frames.shape != naive.frames.shape:
        return None
    mse = float(np.mean((frames.astype(np.float64) - naive.frames.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def compare_peers(path: str, targets: list[int], num_frames: int, exact: object) -> dict[str, str]:
    """Peer module -> how its frames compare with videoproc's at the stored size, where both count
    the same frames (so an index names the same frame); else why they were not compared."""
    if not isinstance(exact, VideoResult) or exact.status != "ok":
        return {"decord": "not compared: videoproc's row failed"}
    if exact.source.get("rotation"):
        return {"decord": "not compared: videoproc turns the picture upright, decord does not"}
    try:
        theirs = peers.decord_batch(path, targets, size=None, threads=1)
    except Exception as exc:  # noqa: BLE001 - a peer that cannot read the file is a result
        return {"decord": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    if theirs.num_frames != num_frames:
        return {"decord": f"not compared: decord counts {theirs.num_frames} frames, videoproc {num_frames}"}
    full = run_videoproc(path, "exact", size=None)
    ours = np.frombuffer(full.frames, np.uint8).reshape(full.shape)
    value, worst = peers.psnr(ours, theirs.frames), peers.max_abs_diff(ours, theirs.frames)
    if value is None:
        return {"decord": f"not compared: shapes {ours.shape} and {theirs.frames.shape}"}
    return {"decord": "identical" if math.isinf(value) else f"{value:.1f} dB, max diff {worst}"}


def _unreadable(video: corpus.BenchVideo, exc: Exception) -> FileResult:
    missing = Timing(error=f"not probed: {type(exc).__name__}: {exc}")
    return FileResult(
        name=video.name, description=video.description, tags=tuple(sorted(video.tags)), codec="?",
        num_frames=0, keyframes=0, sampled=0, exact=missing, keyframe=missing, naive=missing,
        ffmpeg=missing, probe=missing, status=f"unreadable: {exc}",
    )


# -- the preprocess job over a manifest ------------------------------------------------------


def measure_throughput(path: str, settings: Settings, log) -> list[ThroughputResult]:
    from videoproc.preprocess.job import run_preprocess

    manifest = os.path.join(settings.work_dir, "many.parquet")
    count = settings.throughput_videos
    ids = [f"v{i:04d}" for i in range(count)]
    pq.write_table(pa.table({"id": ids, "uri": [path] * count}), manifest)
    results = []
    for workers in (1, 2):
        options = PreprocessOptions(
            manifest=manifest,
            output=os.path.join(settings.work_dir, f"out-{workers}w"),
            video=video_options("exact"),
            run=RunOptions(workers=workers, decoder_threads=1, shard_size=settings.shard_size, progress="off",
                           overwrite=True),
        )
        summary = run_preprocess(options).summary
        result = ThroughputResult(
            workers=workers, videos=count, rows_ok=summary["rows_ok"], elapsed_s=summary["elapsed_s"],
            write_s=summary["write_s"], video_s=_decode_seconds(options.output) / max(count, 1),
            load_1m=os.getloadavg()[0],
        )
        log(f"  {workers} worker(s): {result.videos_per_s:.2f} videos/s, writing {result.write_share:.2%}")
        results.append(result)
    return results


def _decode_seconds(output: str) -> float:
    """Sum of the per-video seconds recorded in the shards' completion stats."""
    folder = os.path.join(output, "_videoproc", "shards")
    total = 0.0
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name)) as f:
            total += json.load(f).get("decode_s", 0.0)
    return total


# -- memory of one worker --------------------------------------------------------------------

_RSS_CHILD = """
import json, resource, sys
from videoproc.source.options import SourceOptions
from videoproc.video.options import VideoOptions
from videoproc.video.process import VideoTask, process_video
status = "imports only"
if sys.argv[1]:
    r = process_video(VideoTask(row=0, id="rss", uri=sys.argv[1]),
                      video=VideoOptions(num_frames=int(sys.argv[2]), size=(224, 224)),
                      source=SourceOptions(), threads=1)
    status = r.status if r.status == "ok" else r.error
try:  # VmHWM: ru_maxrss of an exec'd child also counts the parent's memory at fork time
    peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kib": peak, "status": status}))
"""


def peak_rss(path: str) -> dict:
    """Peak RSS (KiB, VmHWM) of a fresh interpreter that processes `path` ('' = imports only)."""
    root = os.path.dirname(HERE)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", _RSS_CHILD, path, str(NUM_FRAMES)], capture_output=True,
                          text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_rss(videos: dict[str, str], log) -> list[RssResult]:
    baseline = peak_rss("")["peak_kib"]
    results = []
    for name, path in videos.items():
        with av.open(path) as container:
            duration = probe(container).duration
        child = peak_rss(path)
        results.append(RssResult(name=name, duration_s=duration, peak_kib=child["peak_kib"], import_kib=baseline,
                                 status=child["status"]))
        log(f"  {name}: {child['peak_kib'] / 1024:.1f} MiB (imports alone {baseline / 1024:.1f} MiB)")
    return results


# -- where the time goes ---------------------------------------------------------------------


def profile_file(name: str, path: str, results_dir: str, log) -> None:
    """cProfile of exact mode on one file: the top functions, printed and saved beside the results."""
    profiler = cProfile.Profile()
    profiler.enable()
    result = run_videoproc(path, "exact")
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    text = f"# exact mode on {name}: {result.status}, {result.frames_decoded} frames decoded\n" + out.getvalue()
    os.makedirs(results_dir, exist_ok=True)
    target = os.path.join(results_dir, f"profile-{name}.txt")
    with open(target, "w") as f:
        f.write(text)
    log(text)
    log(f"profile written to {target}")


# -- the invocation --------------------------------------------------------------------------


def machine() -> dict[str, str]:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    ffmpeg = subprocess.run(
        [ffmpeg_exe(), "-version"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "load average at start (1, 5, 15 min)": load,
        "python": platform.python_version(),
        "PyAV": f"{av.__version__} (libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})",
        "FFmpeg CLI": ffmpeg.replace("ffmpeg version ", "").split(" Copyright")[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny corpus, 1 repeat: checks the benchmark runs")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="files whose name contains NAME (implies --parts files)")
    parser.add_argument("--parts", help=f"comma-separated subset of {','.join(PARTS)} (default: all but profile)")
    parser.add_argument("--repeats", type=int, help="runs per method and file, median reported (default 3; --quick 1)")
    parser.add_argument("--videos", type=int, help="rows of the throughput manifest (default 100; --quick 6)")
    parser.add_argument("--corpus", default=corpus.DEFAULT_CORPUS_DIR, help="folder caching the generated clips")
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="markdown output; the JSON goes beside it")
    parser.add_argument("--render", metavar="JSON", help="re-render a saved JSON result as markdown; measures nothing")
    parser.add_argument("--work-dir", help="scratch folder for manifests and job outputs (default: a temporary one)")
    return parser.parse_args(argv)


def resolve_parts(args: argparse.Namespace) -> tuple[str, ...]:
    if args.parts is None:
        return ("files",) if args.only else ("files", "throughput", "rss")
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        sys.exit(f"--parts {args.parts!r} names unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return parts


def main(argv: list[str] | None = None) -> BenchResults:
    args = parse_args(argv)
    if args.render:
        return rerender(args.render, args.results)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="videoproc-bench-") as scratch:
        settings = Settings(
            quick=args.quick,
            repeats=args.repeats or (1 if args.quick else 3),
            parts=resolve_parts(args),
            throughput_videos=args.videos or (6 if args.quick else 100),
            shard_size=3 if args.quick else 25,
            work_dir=args.work_dir or scratch,
        )
        os.makedirs(settings.work_dir, exist_ok=True)
        results = run(settings, args, log)
    text = report.render(results)
    write_results(results, text, args.results)
    print(text)
    return results


def run(settings: Settings, args: argparse.Namespace, log) -> BenchResults:
    videos = corpus.select(corpus.quick_corpus() if args.quick else corpus.full_corpus(), args.only)
    paths = corpus.build(videos, args.corpus, log=log)
    results = BenchResults(machine=machine(), settings=_settings_text(settings, args), quick=settings.quick)
    for reason in peers.missing().values():
        log(reason)
    if "files" in settings.parts:
        for video in videos:
            log(f"{video.name}:")
            results.files.append(measure_file(video, paths[video.name], settings, log))
            write_results(results, report.render(results), args.results)  # a long run keeps what it has
    if "throughput" in settings.parts:
        many = _first_tagged(videos, corpus.MANY)
        if many:
            log(f"throughput over {settings.throughput_videos} x {many.name}:")
            results.throughput.extend(measure_throughput(paths[many.name], settings, log))
    if "rss" in settings.parts:
        chosen = [v for tag in (corpus.RSS_SHORT, corpus.RSS_LONG) if (v := _first_tagged(videos, tag))]
        log("peak RSS:")
        results.rss.extend(measure_rss({v.name: paths[v.name] for v in chosen}, log))
    if "profile" in settings.parts:
        for video in [v for v in videos if corpus.LONG in v.tags] or videos:
            profile_file(video.name, paths[video.name], os.path.dirname(args.results), log)
    results.machine["load average at end (1, 5, 15 min)"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return results


def _first_tagged(videos: list[corpus.BenchVideo], tag: str) -> corpus.BenchVideo | None:
    return next((v for v in videos if tag in v.tags), None)


def _settings_text(settings: Settings, args: argparse.Namespace) -> dict[str, str]:
    return {
        "corpus": "quick (tiny clips: the numbers mean nothing)" if settings.quick else "full",
        "sampling": f"{NUM_FRAMES} frames uniformly, {SIZE[0]}x{SIZE[1]} through videoproc's FrameConverter "
                    "(decord: its own resize)",
        "decoder threads": "1 for every method (ffmpeg -threads 1); the `default threads` columns: videoproc "
                           f"with {DEFAULT_THREADS} (its default for 1 worker here), each peer with its own default",
        "peers": ", ".join(peers.PEERS) + " (decord resizes itself); plain PyAV = the naive column"
                 + "".join(f"; {reason}" for reason in peers.missing().values())
                 + "; torchcodec: left out (no wheel loads beside the CPU build of torch, see bench/peers.py)",
        "runs per method": f"{settings.repeats} (files under {FAST_ROUND_S} s a round: {FAST_ROUNDS}, each "
                           f"the mean of as many calls in a row as last {MIN_SAMPLE_S} s)",
        "parts": ", ".join(settings.parts),
        "only": " ".join(args.only) if args.only else "all files",
    }


def rerender(source: str, target: str) -> BenchResults:
    with open(source) as f:
        results = report.load(json.load(f))
    text = report.render(results)
    write_results(results, text, target)
    print(text)
    return results


def write_results(results: BenchResults, text: str, target: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    with open(target, "w") as f:
        f.write(text)
    data = dataclasses.asdict(results)
    data["checks"] = [dataclasses.asdict(c) for c in report.evaluate(results)]
    with open(os.path.splitext(target)[0] + ".json", "w") as f:
        json.dump(data, f, indent=1, default=str)


if __name__ == "__main__":
    main()
