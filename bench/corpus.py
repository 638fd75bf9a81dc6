"""The benchmark's videos: clips made with the FFmpeg CLI from recorded commands, plus the real clips.

The synthetic source is testsrc2 (moving pattern, cheap to render) with temporal noise, so every
macroblock is coded and the decoder does realistic work; encoder settings favour encode speed
(x264 superfast still uses CABAC, B-frames and deblocking, like real uploads) with a bitrate cap
typical of web video. The 600 s files loop a 60 s encode with a stream copy, which costs seconds
instead of minutes and keeps a regular keyframe structure (the GOP restarts at each 60 s loop).
Everything is cached in the corpus folder: a clip is only made when its file is missing.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from videoproc.common.testmedia import Clip

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CORPUS_DIR = os.path.join(HERE, ".corpus")
REAL_DIR = os.path.join(os.path.dirname(HERE), "manifests", "media", "real")

# Tags that the targets and the side measurements look for.
LONG = "long"  # a 600 s file: >= 8x naive, keyframe mode >= 20x naive
SHORT_DENSE = "short-dense"  # the 60 s file with 1 s keyframes: >= 2x naive
MANY = "many"  # the short clip repeated in the throughput manifest
RSS_SHORT = "rss-short"
RSS_LONG = "rss-long"
REAL = "real"  # a real-world clip: the peers' total is judged over these


@dataclass(frozen=True, kw_only=True)
class BenchVideo:
    """One benchmark file. `clip` makes it (None for a real clip already on disk); `tags` above."""

    name: str
    description: str
    clip: Clip | None = None
    path: str | None = None
    tags: frozenset[str] = frozenset()


def _source(seconds: float, size: str, rate: int, extra_filter: str = "") -> tuple[str, ...]:
    chain = "noise=alls=10:allf=t" + (f",{extra_filter}" if extra_filter else "")
    return ("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}", "-vf", chain)


def _x264(seconds: float, size: str, gop: int, bitrate: str, *, rate: int = 30,
          extra_filter: str = "") -> tuple[str, ...]:
    return (
        *_source(seconds, size, rate, extra_filter),
        "-c:v", "libx264", "-preset", "superfast", "-pix_fmt", "yuv420p", "-b:v", bitrate,
        "-maxrate", bitrate, "-bufsize", "8M", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
    )


def _loop(name: str, base: Clip, times: int) -> Clip:
    return Clip(name=name, args=("-stream_loop", str(times - 1), "-i", "{base}", "-c", "copy"), base=base)


def _hevc(seconds: float) -> Clip:
    # x265's default open GOP gives RASL frames after each keyframe: seeks land past their target.
    return Clip(
        name=f"hevc_720p_{seconds}s_k250.mp4",
        args=(
            *_source(seconds, "1280x720", 30), "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-b:v", "3M", "-x265-params", "log-level=error:keyint=250:min-keyint=250:scenecut=0", "-tag:v", "hvc1",
        ),
    )


def _vp9(seconds: float) -> Clip:
    return Clip(
        name=f"vp9_720p_{seconds}s_k250.webm",
        args=(
            *_source(seconds, "1280x720", 30), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
            "-row-mt", "1", "-pix_fmt", "yuv420p", "-b:v", "3M", "-g", "250",
        ),
    )


def _av1(seconds: float) -> Clip:
    return Clip(
        name=f"av1_720p_{seconds}s_k250.mkv",
        args=(
            *_source(seconds, "1280x720", 30), "-c:v", "libsvtav1", "-preset", "11", "-pix_fmt", "yuv420p",
            "-b:v", "2M", "-g", "250",
        ),
    )


def _vfr(seconds: float, size: str = "1280x720") -> Clip:
    # Odd seconds keep every other frame: 30 fps and 15 fps alternate, with the real timestamps kept.
    return Clip(
        name=f"vfr_{size.split('x')[1]}p_{seconds}s.mkv",
        args=(
            *_x264(seconds, size, 250, "3M", extra_filter="select='if(mod(floor(t),2),not(mod(n,2)),1)'"),
            "-fps_mode", "vfr",
        ),
    )


def full_corpus() -> list[BenchVideo]:
    dense60 = Clip(name="h264_720p_60s_k1s.mp4", args=_x264(60, "1280x720", 30, "4M"))
    sparse60 = Clip(name="h264_720p_60s_k250.mp4", args=_x264(60, "1280x720", 250, "4M"))
    videos = [
        BenchVideo(name=dense60.name, description="720p30 H.264, 60 s, keyframe every 1 s", clip=dense60,
                   tags=frozenset({SHORT_DENSE})),
        BenchVideo(name=sparse60.name, description="720p30 H.264, 60 s, keyframe every 250 frames", clip=sparse60),
        BenchVideo(name="h264_720p_600s_k1s.mp4", description="720p30 H.264, 600 s, keyframe every 1 s",
                   clip=_loop("h264_720p_600s_k1s.mp4", dense60, 10), tags=frozenset({LONG})),
        BenchVideo(name="h264_720p_600s_k250.mp4", description="720p30 H.264, 600 s, keyframe every ~8 s",
                   clip=_loop("h264_720p_600s_k250.mp4", sparse60, 10), tags=frozenset({LONG, RSS_LONG})),
        _generated(Clip(name="h264_1080p_60s_k250.mp4", args=_x264(60, "1920x1080", 250, "8M")),
                   "1080p30 H.264, 60 s, keyframe every 250 frames"),
        _generated(_hevc(60), "720p30 HEVC (open GOP), 60 s, keyframe every 250 frames"),
        _generated(_vp9(60), "720p30 VP9 in WebM, 60 s, keyframe every 250 frames"),
        _generated(_av1(60), "720p30 AV1 (SVT) in Matroska, 60 s, keyframe every 250 frames"),
        _generated(_vfr(60), "720p H.264 in Matroska, 30/15 fps alternating each second, 60 s"),
        BenchVideo(name="h264_720p_10s_k1s.mp4", description="720p30 H.264, 10 s, keyframe every 1 s",
                   clip=Clip(name="h264_720p_10s_k1s.mp4", args=_x264(10, "1280x720", 30, "4M")),
                   tags=frozenset({MANY, RSS_SHORT})),
    ]
    return videos + real_clips()


def quick_corpus() -> list[BenchVideo]:
    """Tiny clips for the smoke test: every code path of the benchmark, none of its cost."""
    short = Clip(name="quick_h264_2s_k10.mp4", args=_x264(2, "160x120", 10, "300k"))
    long = _loop("quick_h264_6s_k10.mp4", short, 3)
    return [
        BenchVideo(name=short.name, description="160x120 H.264, 2 s, keyframe every 10 frames", clip=short,
                   tags=frozenset({SHORT_DENSE, MANY, RSS_SHORT})),
        BenchVideo(name=long.name, description="the 2 s clip looped to 6 s", clip=long,
                   tags=frozenset({LONG, RSS_LONG})),
        _generated(_vfr(2, "160x120"), "160x120 H.264 in Matroska, 30/15 fps alternating, 2 s"),
    ]


def _generated(clip: Clip, description: str) -> BenchVideo:
    return BenchVideo(name=clip.name, description=description, clip=clip)


def real_clips(folder: str = REAL_DIR) -> list[BenchVideo]:
    """The real-world clips shipped with the repository (absent folder: none)."""
    if not os.path.isdir(folder):
        return []
    names = sorted(n for n in os.listdir(folder) if not n.endswith(".md"))
    return [BenchVideo(name=n, description="real clip", path=os.path.join(folder, n), tags=frozenset({REAL}))
            for n in names]


def build(videos: list[BenchVideo], folder: str, *, log=print) -> dict[str, str]:
    """Make the missing clips in `folder`; returns the path of every video by name."""
    # SVT-AV1 prints its banner unless told otherwise; it is noise in the benchmark's output.
    os.environ.setdefault("SVT_LOG", "1")
    paths = {}
    for video in videos:
        if video.clip is None:
            paths[video.name] = video.path
            continue
        target = os.path.join(folder, video.clip.name)
        if not os.path.exists(target):
            started = time.monotonic()
            log(f"making {video.name} ...")
            video.clip.make(folder)
            log(f"  made in {time.monotonic() - started:.1f} s")
        paths[video.name] = target
    return paths


def select(videos: list[BenchVideo], only: list[str] | None) -> list[BenchVideo]:
    """The videos whose names contain one of `only` (all when empty); unknown names are an error."""
    if not only:
        return videos
    chosen = [v for v in videos if any(o in v.name for o in only)]
    if not chosen:
        names = ", ".join(v.name for v in videos)
        sys.exit(f"--only {' '.join(only)} matches no benchmark file; the files are: {names}")
    return chosen
