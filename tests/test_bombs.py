"""Memory bombs: a few kilobytes that claim billions of samples, a stream whose coded size needs
more memory than a worker may have. Each ends as one failed row naming the rule and the fix, and
the worker's memory stays under its ceiling.

The table bombs are real FFmpeg-made MP4s with one sample-table count rewritten (tests/mp4bombs.py).
Before they were bounded, the ctts bomb with 10^8 samples took a worker from 58 MB to 1.6 GB of
resident memory, and an stsz bomb of 10^7 one-byte samples to 690 MB.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import replace

import av
import pytest

from tests.helpers import read_output, write_manifest
from tests.mp4bombs import BOMB_BASE, TABLES, make_bomb
from videoproc.common.errors import OptionsError, VideoError
from videoproc.common.memory import FRAME_COST_BYTES, default_worker_memory, worker_memory_ceiling
from videoproc.common.testmedia import Clip, _x264
from videoproc.preprocess.config import build_options
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.preprocess.pool import WorkerConfig, WorkerPool
from videoproc.source.options import SourceOptions
from videoproc.video.mp4index import video_composition_offsets
from videoproc.video.options import VideoOptions
from videoproc.video.probe_index import probe_from_index
from videoproc.video.process import VideoTask, process_video

# One 16000x16000 frame (near FFmpeg's largest picture), black, so it encodes to 750 kB; decoding
# it maps about 850 MB, more than WORKER_MEMORY.
HUGE_CODED_SIZE = Clip(
    name="huge_16000x16000.mp4",
    args=("-f", "lavfi", "-i", "color=black:size=16000x16000:rate=1:duration=1", "-c:v", "libx264",
          "-preset", "ultrafast", "-threads", "1", "-pix_fmt", "yuv420p"),
)
# 300 packets, for the scan's packet budget.
SCAN_300 = Clip(name="scan_300.mkv", args=_x264(10, "64x48", 30, 30))
# Two frames ten million seconds apart: fps sampling would make one sample time per second.
TIMESTAMP_GAP = Clip(
    name="gap_1e7s.mkv",
    args=("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=1:duration=2", "-vf", "setpts=N*10000000/TB",
          "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"),
)
WORKER_MEMORY = 512 * 2**20  # the smallest ceiling allowed; an idle worker maps about 250 MB
HUGE_MAX_ALLOC = 2**31  # lets the 16000x16000 row past --max-alloc, so FFmpeg meets the ceiling
TABLE_RULES = {
    "stts": r"stts table \(track 1, video\) claims 4294967\d+ samples but the file has \d+ bytes",
    "ctts": r"ctts table \(track 1, video\) claims 4294967\d+ samples but the file has \d+ bytes",
    "stsz": r"stsz table \(track 1, video\) claims 4294967295 samples but the file has \d+ bytes",
    "stss": r"stss table \(track 1, video\) claims 4294967295 entries but its box holds \d+",
}
FIX = "re-encode it from its original, or drop the row"


@pytest.fixture(scope="module")
def bombs(clip_factory, tmp_path_factory) -> dict[str, str]:
    """The four table bombs, by table name."""
    folder = tmp_path_factory.mktemp("bombs")
    with open(clip_factory(BOMB_BASE), "rb") as f:
        base = f.read()
    paths = {}
    for table in TABLES:
        paths[table] = str(folder / f"{table}_bomb.mp4")
        with open(paths[table], "wb") as f:
            f.write(make_bomb(base, table))
    return paths


def run_one(path: str, **video) -> object:
    options = VideoOptions(**{"num_frames": 4, "size": (32, 32), **video})
    return process_video(VideoTask(row=0, id="v", uri=path), video=options, source=SourceOptions(), threads=1)


@pytest.mark.parametrize("table", TABLES)
def test_a_table_claiming_billions_fails_its_row_before_ffmpeg_reads_it(table, bombs):
    result = run_one(bombs[table])
    assert result.status == "failed"
    assert f"the MP4's {table} table" in result.error and FIX in result.error
    assert re.search(TABLE_RULES[table], result.error), result.error


def test_the_base_clip_is_fine(clip_factory):
    result = run_one(clip_factory(BOMB_BASE))
    assert result.status == "ok", result.error
    assert result.source["source_num_frames"] == 20


def test_samples_the_file_can_hold_but_max_alloc_cannot_fail_naming_max_alloc(clip_factory, tmp_path):
    with open(clip_factory(BOMB_BASE), "rb") as f:
        bomb = make_bomb(f.read(), "stsz", 3000)  # fits in the file's bytes
    path = tmp_path / "stsz_3000.mp4"
    path.write_bytes(bomb)
    max_alloc = 64 * 2**10  # 256 frames
    result = run_one(str(path), max_alloc=max_alloc)
    assert result.status == "failed"
    assert result.error.startswith("the MP4's stsz table (track 1, video) counts 3000 frames")
    assert f"--max-alloc {max_alloc} allows at most {max_alloc // FRAME_COST_BYTES} frames" in result.error
    assert "raise --max-alloc" in result.error
    assert run_one(str(path), max_alloc=2**20).error.startswith("frame 0")  # past the budget: FFmpeg's turn


def test_the_packet_scan_stops_at_the_frame_budget(clip_factory):
    path = clip_factory(SCAN_300)
    assert run_one(path).status == "ok"
    result = run_one(path, max_alloc=100 * FRAME_COST_BYTES)
    assert result.status == "failed"
    assert result.error.startswith("the video stream has more than 100 frames")
    assert "raise --max-alloc" in result.error


def test_fps_sampling_over_a_huge_timestamp_gap_fails_before_making_the_times(clip_factory):
    path = clip_factory(TIMESTAMP_GAP)
    result = run_one(path, num_frames=None, fps=1.0, max_frames=4)
    assert result.status == "failed"
    assert "--fps 1 over its 10000001 s duration would make 10000001 sample times" in result.error
    assert "raise --max-alloc or lower --fps" in result.error


def test_the_index_is_counted_before_it_is_read(clip_factory):
    path = clip_factory(BOMB_BASE)
    with open(path, "rb") as f:
        runs = video_composition_offsets(f, file_size=os.path.getsize(path))
    assert runs is not None and runs.total == 20 and len(runs.counts) < 20  # run-length, as stored
    with (
        av.open(path) as container,
        pytest.raises(VideoError, match=r"the MP4's index lists 20 frames.*at most 19 frames"),
    ):
        probe_from_index(container, runs, file_size=None, max_frames=19)
    with av.open(path) as container:
        assert probe_from_index(container, runs, file_size=None, max_frames=20).num_frames == 20


def test_worker_memory_option():
    options = build_options(manifest="m.parquet", values={"output": "o", "worker_memory": "3GiB"})
    assert options.run.worker_memory == 3 * 2**30
    assert options.worker_memory_limit(threads=4) == 3 * 2**30
    default = PreprocessOptions(manifest="m", output="o", video=VideoOptions(max_alloc=2**30))
    assert default.worker_memory_limit(threads=2) == default_worker_memory(2**30, threads=2) == 2**31 + 2**32 + 2**28
    off = PreprocessOptions(manifest="m", output="o", run=RunOptions(worker_memory=0))
    assert off.worker_memory_limit(threads=1) is None
    with pytest.raises(OptionsError, match=r"worker_memory must be 0 \(no ceiling\) "
                                           r"or at least 536870912 bytes.*got 1000"):
        RunOptions(worker_memory=1000)
    # It bounds resources like --timeout: a resume may change it.
    assert "worker_memory" not in str(options.result_fingerprint())


def measuring_job(task: VideoTask, **kwargs) -> object:
    """process_video, with the worker's peak resident memory during the row and its ceiling in
    the result's source columns. Writing 5 to clear_refs resets the peak (VmHWM)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    result = process_video(task, **kwargs)
    peak = _status_kib("VmHWM") * 1024
    return replace(result, source={**result.source, "peak_rss": peak, "ceiling": worker_memory_ceiling()})


def segfault_job(task: VideoTask, **kwargs) -> object:
    os.kill(os.getpid(), signal.SIGSEGV)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def test_each_bomb_fails_in_a_worker_whose_memory_stays_under_its_ceiling(bombs, clip_factory):
    paths = {**bombs, "huge": clip_factory(HUGE_CODED_SIZE), "good": clip_factory(BOMB_BASE)}
    tasks = [VideoTask(row=k, id=name, uri=path) for k, (name, path) in enumerate(paths.items())]
    kwargs = {"video": VideoOptions(num_frames=1, size=(32, 32), max_alloc=HUGE_MAX_ALLOC), "source": SourceOptions(),
              "threads": 1}
    config = WorkerConfig(job=measuring_job, kwargs=kwargs, memory_limit=WORKER_MEMORY)
    with WorkerPool(workers=1, config=config, timeout=60) as pool:
        results = {r.id: r for r in pool.run(tasks)}
        assert pool.replaced == 0
    assert results["good"].status == "ok", results["good"].error
    for name, result in results.items():
        assert result.source["ceiling"] == WORKER_MEMORY
        assert result.source["peak_rss"] < WORKER_MEMORY, name
        if name in TABLES:
            assert result.status == "failed" and FIX in result.error
            assert result.source["peak_rss"] < 200 * 2**20, name  # nothing table-sized was built
    huge = results["huge"]
    assert huge.status == "failed"
    assert huge.error.startswith("a 16000x16000 stream needs at least 1152000000 bytes of decoder frames (3 frames)")
    assert f"left under this worker's ceiling, --worker-memory {WORKER_MEMORY} bytes" in huge.error
    assert "raise --worker-memory if the video is legitimate" in huge.error


def test_an_allocation_past_the_ceiling_fails_its_row_naming_it(clip_factory):
    # 8 frames of 8192x8192 RGB (1.6 GB) are within --max-alloc 2GiB but not under the ceiling.
    video = VideoOptions(num_frames=8, size=(8192, 8192), max_alloc=HUGE_MAX_ALLOC)
    config = WorkerConfig(
        job=measuring_job, kwargs={"video": video, "source": SourceOptions(), "threads": 1}, memory_limit=WORKER_MEMORY
    )
    with WorkerPool(workers=1, config=config, timeout=60) as pool:
        (result,) = pool.run([VideoTask(row=0, id="v", uri=clip_factory(BOMB_BASE))])
    assert result.status == "failed"
    assert result.error.startswith(
        f"out of memory while processing this video: the worker's address space reached its ceiling, "
        f"--worker-memory {WORKER_MEMORY} bytes; raise --worker-memory"
    )
    assert result.source["peak_rss"] < WORKER_MEMORY


def test_a_worker_that_dies_under_a_ceiling_names_it():
    config = WorkerConfig(job=segfault_job, kwargs={}, memory_limit=WORKER_MEMORY)
    with WorkerPool(workers=1, config=config, timeout=30) as pool:
        (result,) = pool.run([VideoTask(row=0, id="v", uri="crash.mp4")])
    assert result.error.startswith("worker crashed (signal 11) while decoding crash.mp4; a worker that reaches")
    assert f"--worker-memory {WORKER_MEMORY} bytes" in result.error


def test_a_run_with_every_bomb_has_one_failed_row_each_and_goes_on(bombs, clip_factory, tmp_path):
    good = clip_factory(BOMB_BASE)
    names = ["good-0", *TABLES, "huge", "good-1"]
    uris = [good, *(bombs[t] for t in TABLES), clip_factory(HUGE_CODED_SIZE), good]
    manifest = write_manifest(str(tmp_path / "m.parquet"), {"id": names, "uri": uris})
    values = {
        "output": str(tmp_path / "out"), "workers": 2, "decoder_threads": 1, "num_frames": 2, "size": "32x32",
        "max_alloc": HUGE_MAX_ALLOC, "worker_memory": WORKER_MEMORY, "progress": "off", "timeout": 60,
    }
    report = run_preprocess(build_options(manifest=manifest, values=values))
    rows = {r["id"]: r for r in read_output(str(tmp_path / "out"))}
    assert len(rows) == len(names) and report.exit_code == 3
    assert {n for n, r in rows.items() if r["status"] == "ok"} == {"good-0", "good-1"}
    for table in TABLES:
        assert FIX in rows[table]["error"] and f"{table} table" in rows[table]["error"]
    assert f"--worker-memory {WORKER_MEMORY} bytes" in rows["huge"]["error"]

