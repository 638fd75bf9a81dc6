"""Benchmark records, the issue's targets as PASS/FAIL checks, and the markdown report.

Speedups are naive time / method time, measured in the same run on the same file, so they hold
across machines far better than the seconds do. A check that had nothing to measure (a part or
file left out with --only) says SKIP rather than passing; in quick mode a target that its tiny
corpus cannot show (600 s files, scaling over 6 videos, speed from one run of milliseconds) is a SKIP
that says "not measured in quick mode". Peers (bench.peers, plain PyAV = the naive decode) are
compared at the same threading: videoproc with one thread against one-thread peers, videoproc at
its default against peers at theirs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bench.corpus import LONG, REAL, SHORT_DENSE

Outcome = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True, kw_only=True)
class Timing:
    """Median wall and CPU seconds (this process plus its children) over `runs` runs; `error` if it failed."""

    wall_s: float = math.nan
    cpu_s: float = math.nan
    runs: int = 0
    error: str | None = None
    # Wall seconds of each round, in round order: every method of a file runs once per round, so the
    # k-th samples of two methods were taken side by side (paired_speedup).
    walls: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FileResult:
    """One file: the four methods side by side, and what exact mode decoded against its bound."""

    name: str
    description: str
    tags: tuple[str, ...]
    codec: str
    num_frames: int
    keyframes: int
    sampled: int
    exact: Timing
    keyframe: Timing
    naive: Timing
    ffmpeg: Timing
    probe: Timing
    status: str  # "ok", or the failed row's error
    frames_decoded: int = 0
    frames_decoded_min: int = 0
    keyframe_frames_decoded: int = 0
    naive_frames_decoded: int = 0
    exact_vs_naive_psnr: float | None = None  # inf: identical frames; None: not comparable
    exact_auto: Timing = field(default_factory=Timing)  # videoproc exact mode with its default threads
    peers: dict[str, Timing] = field(default_factory=dict)  # bench.peers.PEERS name -> timing
    peer_frames: dict[str, str] = field(default_factory=dict)  # peer module -> frame comparison


@dataclass(frozen=True, kw_only=True)
class ThroughputResult:
    workers: int
    videos: int
    rows_ok: int
    elapsed_s: float
    write_s: float
    video_s: float = math.nan  # mean seconds per video inside a worker: doubles when the cores are not free
    load_1m: float = math.nan  # the machine's 1-minute load average when the run ended

    @property
    def videos_per_s(self) -> float:
        return self.rows_ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def write_share(self) -> float:
        return self.write_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, kw_only=True)
class RssResult:
    """Peak resident memory (KiB) of a fresh process that processed one video (exact mode)."""

    name: str
    duration_s: float
    peak_kib: int
    import_kib: int
    status: str


@dataclass(frozen=True, kw_only=True)
class BenchResults:
    machine: dict[str, str]
    settings: dict[str, str]
    files: list[FileResult] = field(default_factory=list)
    throughput: list[ThroughputResult] = field(default_factory=list)
    rss: list[RssResult] = field(default_factory=list)
    quick: bool = False  # the tiny corpus: only the checks it can show are judged


@dataclass(frozen=True, kw_only=True)
class Check:
    target: str
    outcome: Outcome
    detail: str


def speedup(naive: Timing, other: Timing) -> float:
    return naive.wall_s / other.wall_s if other.wall_s > 0 else math.nan


def cpu_speedup(naive: Timing, other: Timing) -> float:
    return naive.cpu_s / other.cpu_s if other.cpu_s > 0 else math.nan


@dataclass(frozen=True, kw_only=True)
class Paired:
    """A speedup from rounds taken side by side: the median of the per-round ratios and its 95 %
    confidence interval (distribution-free, from order statistics; NaN below MIN_PAIRED rounds)."""

    ratio: float
    low: float = math.nan
    high: float = math.nan

    @property
    def verdict(self) -> Literal["faster", "slower", "tie"]:
        """faster / slower when the interval (or, without one, the median) is wholly on one side of 1."""
        low, high = (self.low, self.high) if not math.isnan(self.low) else (self.ratio, self.ratio)
        return "faster" if low > 1 else "slower" if high < 1 else "tie"


def _beyond_noise(p: Paired, threshold: float) -> Literal["faster", "slower", "tie"]:
    """p's verdict against `threshold` instead of 1."""
    scaled = Paired(ratio=p.ratio / threshold, low=p.low / threshold, high=p.high / threshold)
    return scaled.verdict


MIN_PAIRED = 6  # the fewest rounds whose median has a 95 % order-statistic interval


def paired_speedup(theirs: Timing, ours: Timing) -> Paired:
    """Their time / ours, round by round. A millisecond file's medians differ by timer and scheduler
    noise from run to run; the interval says whether a difference is larger than that noise."""
    ratios = sorted(t / o for t, o in zip(theirs.walls, ours.walls, strict=False) if o > 0)
    if len(ratios) < MIN_PAIRED:
        return Paired(ratio=speedup(theirs, ours))
    k = _median_rank(len(ratios))
    return Paired(ratio=_median(ratios), low=ratios[k], high=ratios[len(ratios) - 1 - k])


def _median_rank(n: int) -> int:
    """The largest 0-based k with P(Binomial(n, 1/2) <= k) <= 2.5 %: [x_k, x_(n-1-k)] then covers
    the median with at least 95 % probability."""
    k, below = -1, 0.0
    while below + math.comb(n, k + 1) / 2**n <= 0.025:
        k += 1
        below += math.comb(n, k) / 2**n
    return max(k, 0)


def _median(values: list[float]) -> float:
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


# -- targets ---------------------------------------------------------------------------------


def evaluate(results: BenchResults) -> list[Check]:
    """Every target; in quick mode the ones its tiny corpus cannot show say so instead of failing."""
    ok = [f for f in results.files if f.status == "ok"]
    checks = [
        (_each(ok, "frames decoded <= 1.05 x keyframe-bound minimum on every file",
               lambda f: f.frames_decoded <= 1.05 * f.frames_decoded_min,
               lambda f: f"{f.frames_decoded}/{f.frames_decoded_min}"), None),
        (_each(_tagged(ok, LONG), "exact >= 8x naive on 600 s files",
               lambda f: speedup(f.naive, f.exact) >= 8, lambda f: _both(f.naive, f.exact)), _NO_600S),
        (_each(_tagged(ok, SHORT_DENSE), "exact >= 2x naive on the 60 s file with 1 s keyframes",
               lambda f: speedup(f.naive, f.exact) >= 2, lambda f: _both(f.naive, f.exact)),
         "its dense-keyframe file lasts 2 s, not 60 s"),
        (_each(ok, "exact never > 5 % slower than naive on any file",
               lambda f: _beyond_noise(paired_speedup(f.naive, f.exact), 1 / 1.05) != "slower",
               lambda f: f"{_paired(paired_speedup(f.naive, f.exact))} (CPU {_x(cpu_speedup(f.naive, f.exact))})"),
         _NOISE),
        (_each(_tagged(ok, LONG), "keyframe mode >= 20x naive on 600 s files",
               lambda f: speedup(f.naive, f.keyframe) >= 20, lambda f: _both(f.naive, f.keyframe)), _NO_600S),
        (_scaling(results.throughput), "6 videos of 2 s: the pool's start-up outweighs the work"),
        (_rss(results.rss), "its long video lasts 6 s, not 600 s"),
        (_write_share(results.throughput), "6 videos of 2 s: too little decoding to weigh the writing against"),
        (_never_slower_than_peers(ok), _NOISE),
        (_peers_total(_tagged(ok, REAL)), "its corpus has no real clips"),
    ]
    if results.quick:
        return [c if why is None else Check(target=c.target, outcome="SKIP", detail=f"{QUICK} ({why})")
                for c, why in checks]
    return [c for c, _ in checks]


QUICK = "not measured in quick mode"
_NO_600S = "its long file lasts 6 s, not 600 s"
_NOISE = "one run of a few milliseconds per method: timer noise, not speed"


def peer_pairs(f: FileResult) -> list[tuple[str, Timing, Timing]]:
    """(peer, peer's timing, videoproc's timing at the same threading) for every peer measured on `f`:
    plain PyAV (the naive decode) and one-thread peers against videoproc with one thread, peers at
    their default threading against videoproc at its default."""
    pairs = [("pyav", f.naive, f.exact)]
    for name, timing in sorted(f.peers.items()):
        pairs.append((name, timing, f.exact_auto if name.endswith("-auto") else f.exact))
    return [(n, peer, ours) for n, peer, ours in pairs if peer.runs and not peer.error and ours.runs and not ours.error]


def _never_slower_than_peers(files: list[FileResult]) -> Check:
    """Slower means slower beyond the noise: the 95 % interval of the paired rounds lies below 1
    (files with too few rounds for an interval: the median ratio is below 1). Ties are listed."""
    target = "exact never slower than any peer on any file (same threading)"
    pairs = [(f.name, name, paired_speedup(peer, ours)) for f in files for name, peer, ours in peer_pairs(f)]
    if not pairs:
        return Check(target=target, outcome="SKIP", detail="no peer measured")
    slower = [p for p in pairs if p[2].verdict == "slower"]
    ties = [p for p in pairs if p[2].verdict == "tie"]
    parts = []
    if slower:
        parts.append("slower: " + ", ".join(f"{file} vs {name} {_paired(r)}" for file, name, r in slower))
    if ties:
        parts.append("within noise: " + ", ".join(f"{file} vs {name} {_paired(r)}" for file, name, r in ties))
    if not parts:
        file, name, r = min(pairs, key=lambda p: p[2].ratio)
        parts.append(f"closest: {file} vs {name} {_paired(r)}")
    return Check(target=target, outcome="FAIL" if slower else "PASS", detail="; ".join(parts))


def _paired(p: Paired) -> str:
    return _x(p.ratio) if math.isnan(p.low) else f"{_x(p.ratio)} [{p.low:.2f}-{p.high:.2f}]"


def peer_totals(files: list[FileResult]) -> dict[str, tuple[float, float, int]]:
    """peer -> (its seconds, videoproc's seconds, files) summed over the files where both ran."""
    totals: dict[str, tuple[float, float, int]] = {}
    for f in files:
        for name, peer, ours in peer_pairs(f):
            theirs, mine, count = totals.get(name, (0.0, 0.0, 0))
            totals[name] = (theirs + peer.wall_s, mine + ours.wall_s, count + 1)
    return totals


def _peers_total(real: list[FileResult]) -> Check:
    target = "exact >= 1.5x the best peer in total over the real clips"
    totals = peer_totals(real)
    if not totals:
        return Check(target=target, outcome="SKIP", detail="no peer measured on a real clip")
    ratios = {name: theirs / mine for name, (theirs, mine, _) in totals.items()}
    detail = ", ".join(f"{name} {_x(ratios[name])} over {totals[name][2]} files" for name in sorted(ratios))
    bound = exact_decoder_bound(real)
    detail += (f"; the most any decoder returning exactly these frames could reach against one-thread plain "
               f"PyAV by decoding fewer frames: {_x(bound)}" if not math.isnan(bound) else "")
    return Check(target=target, outcome="PASS" if min(ratios.values()) >= 1.5 else "FAIL", detail=detail)


def exact_decoder_bound(files: list[FileResult]) -> float:
    """Plain PyAV's total time / the same total with each file's time scaled by the frames exact mode
    had to decode over the frames plain PyAV decoded.

    On a file whose every frame up to the last target is a reference frame (VP8, VP9, AV1 and
    P-only H.264 clips of one keyframe), an exact decoder decodes what plain PyAV decodes, and only
    its fixed cost can differ; this is the ceiling of the total speedup when that fixed cost is zero
    and decoding is the whole cost."""
    usable = [f for f in files if f.naive.runs and not f.naive.error and f.naive_frames_decoded > 0]
    if not usable:
        return math.nan
    naive = sum(f.naive.wall_s for f in usable)
    least = sum(f.naive.wall_s * min(1.0, f.frames_decoded / f.naive_frames_decoded) for f in usable)
    return naive / least if least > 0 else math.nan


def _both(naive: Timing, other: Timing) -> str:
    """The verdict uses wall time, as the targets say; CPU time shows what a busy machine hid."""
    return f"{_x(speedup(naive, other))} (CPU {_x(cpu_speedup(naive, other))})"


def _tagged(files: list[FileResult], tag: str) -> list[FileResult]:
    return [f for f in files if tag in f.tags]


def _each(files: list[FileResult], target: str, passes: Callable[[FileResult], bool],
          show: Callable[[FileResult], str]) -> Check:
    if not files:
        return Check(target=target, outcome="SKIP", detail="no file measured")
    failing = [f for f in files if not passes(f)]
    shown = failing or files
    detail = ", ".join(f"{f.name} {show(f)}" for f in shown)
    return Check(target=target, outcome="FAIL" if failing else "PASS", detail=("failing: " if failing else "") + detail)


def _scaling(runs: list[ThroughputResult]) -> Check:
    target = "2 workers >= 1.7x the throughput of 1 worker"
    by_workers = {r.workers: r for r in runs}
    if 1 not in by_workers or 2 not in by_workers:
        return Check(target=target, outcome="SKIP", detail="throughput not measured")
    ratio = by_workers[2].videos_per_s / by_workers[1].videos_per_s if by_workers[1].videos_per_s else math.nan
    return Check(target=target, outcome="PASS" if ratio >= 1.7 else "FAIL", detail=f"{ratio:.2f}x")


def _rss(runs: list[RssResult]) -> Check:
    target = "peak RSS per worker within 20 % between a short and a long video"
    good = [r for r in runs if r.status == "ok"]
    if len(good) < 2:
        return Check(target=target, outcome="SKIP", detail="RSS not measured")
    short, long = min(good, key=lambda r: r.duration_s), max(good, key=lambda r: r.duration_s)
    growth = long.peak_kib / short.peak_kib - 1
    detail = f"{short.peak_kib / 1024:.0f} MiB -> {long.peak_kib / 1024:.0f} MiB ({growth:+.1%})"
    return Check(target=target, outcome="PASS" if abs(growth) <= 0.2 else "FAIL", detail=detail)


def _write_share(runs: list[ThroughputResult]) -> Check:
    target = "shard writing < 5 % of wall time"
    if not runs:
        return Check(target=target, outcome="SKIP", detail="throughput not measured")
    worst = max(runs, key=lambda r: r.write_share)
    detail = f"worst {worst.write_share:.2%} ({worst.workers} worker(s))"
    return Check(target=target, outcome="PASS" if worst.write_share < 0.05 else "FAIL", detail=detail)


def load(data: dict) -> BenchResults:
    """BenchResults from the JSON that bench.run writes beside the markdown (to re-render it)."""
    def file(f: dict) -> FileResult:
        timings = {m: Timing(**f[m]) for m in ("exact", "keyframe", "naive", "ffmpeg", "probe", "exact_auto") if m in f}
        peers = {name: Timing(**t) for name, t in f.get("peers", {}).items()}
        rest = {k: v for k, v in f.items() if k not in timings and k != "peers"}
        return FileResult(**(rest | timings | {"tags": tuple(f["tags"]), "peers": peers}))

    return BenchResults(
        machine=data["machine"], settings=data["settings"], files=[file(f) for f in data["files"]],
        throughput=[ThroughputResult(**t) for t in data["throughput"]], rss=[RssResult(**r) for r in data["rss"]],
        quick=data.get("quick", False),
    )


# -- markdown ---------------------------------------------------------------------------------


def render(results: BenchResults) -> str:
    parts = [
        "# videoproc benchmark",
        _bullets("Machine", results.machine),
        _bullets("Settings", results.settings),
        _timing_table(results.files),
        _frames_table(results.files),
        _peers_table(results.files),
        _throughput_table(results.throughput),
        _rss_table(results.rss),
        "## Targets\n\n" + "\n".join(format_check(c) for c in evaluate(results)),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def format_check(check: Check) -> str:
    return f"- {check.outcome}: {check.target} ({check.detail})"


def _bullets(title: str, items: dict[str, str]) -> str:
    return f"## {title}\n\n" + "\n".join(f"- {k}: {v}" for k, v in items.items())


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _s(t: Timing) -> str:
    return "error" if t.error else ("–" if t.runs == 0 else f"{t.wall_s:.3f}")


def _x(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _timing_table(files: list[FileResult]) -> str:
    if not files:
        return ""
    header = ["file", "exact s", "keyframe s", "naive s", "ffmpeg null s", "exact vs naive",
              "keyframe vs naive", "ffmpeg vs naive", "exact vs naive (CPU)", "scan probe s", "runs"]
    rows = [
        [f.name, _s(f.exact), _s(f.keyframe), _s(f.naive), _s(f.ffmpeg), _x(speedup(f.naive, f.exact)),
         _x(speedup(f.naive, f.keyframe)), _x(speedup(f.naive, f.ffmpeg)), _x(cpu_speedup(f.naive, f.exact)),
         _s(f.probe), str(f.exact.runs)]
        for f in files
    ]
    note = ("Wall seconds, median over the runs; methods interleaved run by run. `vs naive` = naive time / "
            "method time (higher is faster); the CPU column compares CPU seconds, steadier on a busy machine. "
            "`scan probe s` is a demux-only packet scan (videoproc's probe where the container has no usable "
            "index). Errors per method are listed under the tables.")
    return "## Time per file\n\n" + note + "\n\n" + _table(header, rows) + _errors(files)


def _errors(files: list[FileResult]) -> str:
    lines = []
    for f in files:
        if f.status != "ok":
            lines.append(f"- {f.name}: videoproc row failed: {f.status}")
        for method in ("exact", "keyframe", "naive", "ffmpeg", "probe"):
            error = getattr(f, method).error
            if error:
                lines.append(f"- {f.name}: {method}: {error}")
    return "\n\n" + "\n".join(lines) if lines else ""


def _psnr(value: float | None) -> str:
    if value is None:
        return "–"
    return "identical" if math.isinf(value) else f"{value:.1f} dB"


def _frames_table(files: list[FileResult]) -> str:
    if not files:
        return ""
    header = ["file", "what", "codec", "frames", "keyframes", "sampled", "decoded (exact)", "keyframe bound",
              "exact / bound", "decoded (keyframe mode)", "decoded (naive)", "exact vs naive frames"]
    rows = [
        [f.name, f.description, f.codec, str(f.num_frames), str(f.keyframes), str(f.sampled), str(f.frames_decoded),
         str(f.frames_decoded_min), f"{f.frames_decoded / f.frames_decoded_min:.3f}" if f.frames_decoded_min else "–",
         str(f.keyframe_frames_decoded), str(f.naive_frames_decoded), _psnr(f.exact_vs_naive_psnr)]
        for f in files
    ]
    note = ("Frames the decoder produced per video. The bound decodes from each target's preceding keyframe up "
            "to it, shared frames once; exact mode goes below it on H.264 and HEVC by skipping the "
            "non-reference frames it does not return (no other frame is predicted from them, so nothing "
            "decoded after them changes). The last column compares exact mode's output with the naive decode "
            "of the same indices (same scaler): identical frames prove the seeks landed on the right frames.")
    return "## Frames decoded\n\n" + note + "\n\n" + _table(header, rows)


def _throughput_table(runs: list[ThroughputResult]) -> str:
    if not runs:
        return ""
    header = ["workers", "videos", "ok", "wall s", "videos/s", "s per video in a worker", "shard writing s",
              "writing share", "load average"]
    rows = [
        [str(r.workers), str(r.videos), str(r.rows_ok), f"{r.elapsed_s:.2f}", f"{r.videos_per_s:.2f}",
         f"{r.video_s:.3f}", f"{r.write_s:.3f}", f"{r.write_share:.2%}", f"{r.load_1m:.2f}"]
        for r in runs
    ]
    note = ("The preprocess job over one manifest (one short clip repeated), one decoder thread per worker. "
            "When the seconds per video grow with the workers, the workers did not have a free core each "
            "(a busy machine), which caps the scaling whatever the pool does.")
    return "## Throughput\n\n" + note + "\n\n" + _table(header, rows)


def _rss_table(runs: list[RssResult]) -> str:
    if not runs:
        return ""
    header = ["video", "duration s", "peak RSS MiB", "after imports MiB", "status"]
    rows = [
        [r.name, f"{r.duration_s:.0f}", f"{r.peak_kib / 1024:.1f}", f"{r.import_kib / 1024:.1f}", r.status]
        for r in runs
    ]
    note = "Peak resident memory of a fresh process that processes one video, as a worker does."
    return "## Memory per worker\n\n" + note + "\n\n" + _table(header, rows)


def _peers_table(files: list[FileResult]) -> str:
    names = sorted({name for f in files for name in f.peers})
    if not files:
        return ""
    header = (["file", "exact s", "exact default threads s", "pyav s"] + [f"{n} s" for n in names]
              + [f"vs {n}" for n in ["pyav", *names]] + ["decord frames vs videoproc"])
    rows = []
    for f in files:
        ratios = {name: _paired(paired_speedup(peer, ours)) for name, peer, ours in peer_pairs(f)}
        rows.append([f.name, _s(f.exact), _s(f.exact_auto), _s(f.naive)]
                    + [_s(f.peers[n]) if n in f.peers else "–" for n in names]
                    + [ratios.get(n, "–") for n in ["pyav", *names]]
                    + [f.peer_frames.get("decord", "–")])
    real = peer_totals([f for f in files if REAL in f.tags and f.status == "ok"])
    if real:
        rows.append(["**real clips, total**", "", "", ""] + [""] * len(names)
                    + [_x(real[n][0] / real[n][1]) if n in real else "–" for n in ["pyav", *names]] + [""])
    note = ("The same files and the same 16 indices (videoproc's exact-mode picks), 224x224. `pyav` is plain "
            "PyAV decoding from frame 0 (the naive column), one thread. `-1t` peers run one thread against "
            "videoproc's one; `-auto` peers run their default threading against videoproc's default "
            "(`exact default threads`). decord resizes in its own filter graph. `vs X` = X's time / videoproc's "
            "(above 1: videoproc is faster): the median of the ratios of rounds run side by side, with its "
            "95 % interval in brackets where a file ran enough rounds; an interval that holds 1 is a tie "
            "within the noise. The last column compares decord's frames with videoproc's at the "
            "stored size, where both count the same frames. Peer errors are listed below.")
    errors = [f"- {f.name}: {n}: {t.error}" for f in files for n, t in sorted(f.peers.items()) if t.error]
    return ("## Peers\n\n" + note + "\n\n" + _table(header, rows)
            + ("\n\n" + "\n".join(errors) if errors else ""))
