"""Clip mode end to end: rows per clip checked against the FFmpeg CLI (real and variable-frame-rate
clips), the decode cost of overlapping clips, skipped / padded / looped short videos, resume,
--retry-failed, the reader, status, and the Ray executor."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import GENERATED_DIR, REAL_DIR, ffmpeg_frames
from tests.helpers import LONG_GOP, frames_of, read_output, write_manifest
from videoproc.common.exitcodes import ExitCode
from videoproc.preprocess.config import build_options
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.status import format_status, read_status
from videoproc.video.sample import keyframe_bound

EXACT = [os.path.join(REAL_DIR, n) for n in ("carphone_pristine.mp4", "nasa_13013.mp4", "av1_video.mkv")]
VFR = os.path.join(GENERATED_DIR, "vfr.mkv")


def run(manifest, output, **values):
    base = {"output": str(output), "size": "original", "workers": 2, "progress": "off"}
    return run_preprocess(build_options(manifest=str(manifest), values=base | values))


def manifest_of(tmp_path, uris, name="m.parquet"):
    ids = [f"v{i}-{os.path.basename(u).split('.')[0]}" for i, u in enumerate(uris)]
    captions = [f"c{i}" for i in range(len(uris))]
    return write_manifest(str(tmp_path / name), {"id": ids, "uri": uris, "caption": captions})


def by_video(rows):
    videos: dict[str, list] = {}
    for row in rows:
        videos.setdefault(row["id"], []).append(row)
    return videos


@pytest.mark.parametrize("clip", [{"clip_frames": 6, "clip_fps": 4.0, "clips_per_video": 3},
                                  {"clip_frames": 5, "clips_per_video": 4},
                                  {"clip_frames": 4, "clip_fps": 10.0, "clip_stride": 0.5, "max_clips": 3}])
def test_every_clip_frame_is_the_clis_frame_at_its_index(tmp_path, clip):
    uris = EXACT + [VFR]
    report = run(manifest_of(tmp_path, uris), tmp_path / "out", shard_size=2, **clip)
    assert report.exit_code == ExitCode.OK, report.summary
    videos = by_video(read_output(str(tmp_path / "out")))
    assert len(videos) == len(uris)
    for uri, rows in zip(uris, videos.values(), strict=True):
        reference = ffmpeg_frames(uri)
        assert [r["clip_index"] for r in rows] == list(range(len(rows)))
        assert [r["clip_start"] for r in rows] == sorted(r["clip_start"] for r in rows)
        for row in rows:
            frames = frames_of(row)
            assert frames.shape[0] == clip["clip_frames"] and row["caption"] == rows[0]["caption"]
            assert row["clip_start"] == row["timestamps"][0] or "clip_fps" in clip
            assert row["clip_start"] < row["clip_end"]
            same = [np.array_equal(f, reference[i]) for f, i in zip(frames, row["frame_indices"], strict=True)]
            assert all(same), f"{uri} clip {row['clip_index']}: frames {row['frame_indices']} vs the CLI: {same}"


def test_vfr_clip_samples_by_time(tmp_path):
    # vfr.mkv: 20 frames 0.1 s apart, then 20 frames 0.025 s apart from 2 s to its end at 2.5 s.
    run(manifest_of(tmp_path, [VFR]), tmp_path / "out", clip_frames=2, clip_fps=4.0, clip_stride=1.0)
    rows = read_output(str(tmp_path / "out"))
    assert [r["clip_start"] for r in rows] == [0.0, 1.0, 2.0]
    assert rows[0]["frame_indices"] == [0, 2] and rows[0]["clip_end"] == 0.5
    assert rows[2]["frame_indices"] == [20, 30] and rows[2]["timestamps"] == [2.0, 2.25]


def test_overlapping_clips_decode_each_frame_once(tmp_path, clip_factory):
    long_gop = clip_factory(LONG_GOP)  # 250 frames at 25 fps, keyframes at 0, 100, 200, B-frames
    manifest = manifest_of(tmp_path, [long_gop])
    # 30-frame clips every 20 frames: each overlaps the next by 10, and together they cover all.
    run(manifest, tmp_path / "a", size="32x32", clip_frames=30, clip_stride=0.8)
    rows = read_output(str(tmp_path / "a"))
    assert len(rows) == 12 and rows[-1]["frame_indices"][-1] == 249
    assert rows[0]["frames_decoded"] == rows[0]["frames_decoded_min"] == 250  # each frame once
    assert sum(r["frames_decoded"] for r in rows) == 250  # counted on the video's first row only
    # Sparse clips sharing GOPs: within the keyframe bound of their union.
    run(manifest, tmp_path / "b", size="32x32", clip_frames=4, clip_fps=5.0, clips_per_video=3)
    rows = read_output(str(tmp_path / "b"))
    union = [i for r in rows for i in r["frame_indices"]]
    assert union == [0, 5, 10, 15, 115, 120, 125, 130, 230, 235, 240, 245]
    assert rows[0]["frames_decoded_min"] == keyframe_bound(union, [0, 100, 200]) == 16 + 31 + 46
    assert rows[0]["frames_decoded"] <= 1.05 * rows[0]["frames_decoded_min"]


def test_short_videos_are_skipped_not_failed(tmp_path):
    short = os.path.join(GENERATED_DIR, "testsrc_h264_3s.mp4")
    uris = [short, EXACT[0], str(tmp_path / "missing.mp4")]
    manifest = manifest_of(tmp_path, uris)
    report = run(manifest, tmp_path / "out", size="32x32", clip_frames=16, clip_fps=4.0, clips_per_video=2)
    assert report.exit_code == ExitCode.ROWS_FAILED  # the missing file; the skipped video is no failure
    summary = report.summary
    assert (summary["rows_ok"], summary["rows_failed"], summary["rows_skipped"], summary["clips_ok"]) == (1, 1, 1, 2)
    rows = read_output(str(tmp_path / "out"))
    assert [(r["id"][:2], r["status"], r["clip_index"]) for r in rows] == [
        ("v0", "skipped", None), ("v1", "ok", 0), ("v1", "ok", 1), ("v2", "failed", None)]
    assert "shorter than one clip of 16 frames at 4 fps (4.000 s); --short-video pad or loop" in rows[0]["error"]
    assert rows[0]["frames"] is None and rows[0]["source_duration"] == pytest.approx(3.0)
    text = format_status(read_status(str(tmp_path / "out")))
    assert "1 failed, 1 skipped (2 clips)" in text and "frames=16" in text and "per_video=2" in text
    only_short = manifest_of(tmp_path, [short], name="short.parquet")
    skipped = run(only_short, tmp_path / "skip", size="32x32", clip_frames=16, clip_fps=4.0)
    assert skipped.exit_code == ExitCode.OK and skipped.summary["rows_skipped"] == 1


@pytest.mark.parametrize("mode", ["pad", "loop"])
def test_short_video_pad_and_loop_give_one_clip(tmp_path, mode):
    short = os.path.join(GENERATED_DIR, "testsrc_h264_3s.mp4")
    run(manifest_of(tmp_path, [short]), tmp_path / "out", clip_frames=16, clip_fps=4.0, clips_per_video=3,
        short_video=mode)
    (row,) = read_output(str(tmp_path / "out"))
    reference = ffmpeg_frames(short)
    last = len(reference) - 1
    # 3 s at 30 fps: sample k at k/4 s is frame floor(k * 7.5); past the end, the last or the start again.
    expected = ([min(k * 15 // 2, last) for k in range(16)] if mode == "pad"
                else [(k % 12) * 15 // 2 for k in range(16)])
    assert row["status"] == "ok" and row["clip_index"] == 0 and row["frame_indices"] == expected
    assert all(np.array_equal(f, reference[i]) for f, i in zip(frames_of(row), expected, strict=True))


def test_random_clips_are_the_same_in_every_run(tmp_path):
    manifest = manifest_of(tmp_path, EXACT)
    clip = {"size": "16x16", "clip_frames": 3, "clip_fps": 5.0, "clips_per_video": 3, "clip_sampling": "random",
            "clip_seed": 11}
    run(manifest, tmp_path / "a", workers=1, **clip)
    run(manifest, tmp_path / "b", shard_size=1, **clip)
    a, b = read_output(str(tmp_path / "a")), read_output(str(tmp_path / "b"))
    assert [r["clip_start"] for r in a] == [r["clip_start"] for r in b]
    assert [r["frames"] for r in a] == [r["frames"] for r in b]
    run(manifest, tmp_path / "c", **(clip | {"clip_seed": 12}))
    assert [r["clip_start"] for r in read_output(str(tmp_path / "c"))] != [r["clip_start"] for r in a]


CLIP_RUN = {"size": "16x16", "clip_frames": 4, "clip_fps": 4.0, "clips_per_video": 2, "shard_size": 2}


def test_resume_after_a_lost_shard_and_retry_failed(tmp_path):
    uris = [EXACT[0], str(tmp_path / "late.mp4"), EXACT[1], EXACT[2], VFR]
    manifest = manifest_of(tmp_path, uris)
    out = tmp_path / "out"
    first = run(manifest, out, **CLIP_RUN)
    assert first.exit_code == ExitCode.ROWS_FAILED and first.summary["clips_ok"] == 8
    whole = read_output(str(out))
    # A shard lost as a killed run loses it (file and marker gone): the rerun redoes that one only.
    os.remove(out / "data" / "part-00001.parquet")
    os.remove(out / "_videoproc" / "shards" / "part-00001.json")
    again = run(manifest, out, **CLIP_RUN)
    assert again.exit_code == ExitCode.ROWS_FAILED and again.summary["resumed"]
    assert [r["frames"] for r in read_output(str(out))] == [r["frames"] for r in whole]
    shutil.copy(EXACT[2], tmp_path / "late.mp4")  # the cause is fixed
    fixed = run(manifest, out, retry_failed=True, **CLIP_RUN)
    assert fixed.exit_code == ExitCode.OK and fixed.summary["rows_recovered"] == 1
    assert fixed.summary["clips_ok"] == 10
    rows = read_output(str(out))
    assert [(r["id"][:2], r["clip_index"]) for r in rows] == [(f"v{i}", k) for i in range(5) for k in (0, 1)]
    assert rows[2]["frames"] == rows[6]["frames"] and rows[3]["caption"] == "c1"  # late.mp4 is EXACT[2]
    names = pq.read_schema(out / "data" / "part-00000.parquet").names
    after = names.index("bytes_read") + 1  # the clip columns follow the fixed ones
    assert names[after:after + 3] == ["clip_index", "clip_start", "clip_end"]


def test_frame_dataset_yields_clips_and_collates(tmp_path):
    torch = pytest.importorskip("torch")
    from videoproc.read import FrameDataset, iter_rows

    run(manifest_of(tmp_path, EXACT), tmp_path / "out", **CLIP_RUN)
    loader = torch.utils.data.DataLoader(FrameDataset(str(tmp_path / "out")), batch_size=4)
    batches = list(loader)
    assert [tuple(b["frames"].shape) for b in batches] == [(4, 4, 16, 16, 3), (2, 4, 16, 16, 3)]
    assert batches[0]["clip_index"].tolist() == [0, 1, 0, 1]
    assert batches[0]["clip_start"].dtype == torch.float64 and batches[0]["caption"] == ["c0", "c0", "c1", "c1"]
    rows = list(iter_rows(str(tmp_path / "out")))
    assert [(r["id"][:2], r["clip_index"]) for r in rows] == [(f"v{i}", k) for i in range(3) for k in (0, 1)]


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_ray_gives_the_local_clip_rows(ray_cluster, tmp_path):
    manifest = manifest_of(tmp_path, EXACT + [VFR])
    run(manifest, tmp_path / "local", **CLIP_RUN)
    report = run(manifest, tmp_path / "ray", executor="ray", ray_address=ray_cluster.address, **CLIP_RUN)
    assert report.exit_code == ExitCode.OK and report.summary["clips_ok"] == 8
    for name in ("part-00000.parquet", "part-00001.parquet"):
        local = pq.read_table(tmp_path / "local" / "data" / name)
        assert pq.read_table(tmp_path / "ray" / "data" / name).equals(local)
