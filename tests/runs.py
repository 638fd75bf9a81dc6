"""A finished preprocess run over real clips, shared by the reader and inspect tests."""

from __future__ import annotations

import glob
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REAL_DIR
from videoproc.preprocess.job import run_preprocess
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.video.options import VideoOptions

CLIPS = ["carphone_pristine.mp4", "big_buck_bunny_432_433.webm", "av1_video.mkv", "missing.mp4",
         "h265_video.mp4", "video_90.mov", "no_duration.webm", "h264_10bits.mp4"]
NUM_FRAMES, SIZE = 4, (48, 32)


@pytest.fixture(scope="session")
def real_run(tmp_path_factory) -> str:
    """A finished run over 8 real clips (one missing: a failed row) in 3 shards of at most 3 rows."""
    folder = tmp_path_factory.mktemp("real_run")
    manifest = str(folder / "manifest.parquet")
    pq.write_table(pa.table({
        "id": [c.split(".")[0] for c in CLIPS],
        "uri": [os.path.join(REAL_DIR, c) for c in CLIPS],
        "caption": [f"clip {i}" for i in range(len(CLIPS))],
        "position": list(range(len(CLIPS))),
    }), manifest)
    output = str(folder / "out")
    options = PreprocessOptions(
        manifest=manifest, output=output, video=VideoOptions(num_frames=NUM_FRAMES, size=SIZE),
        run=RunOptions(workers=2, shard_size=3, progress="off"),
    )
    report = run_preprocess(options)
    assert report.summary["shards_committed"] == 3 and report.summary["rows_failed"] == 1
    return output


def stored_rows(output: str) -> dict[str, dict]:
    """The ok rows of the output read back with pyarrow alone, frames as (T, H, W, 3) arrays."""
    rows = {}
    for path in sorted(glob.glob(os.path.join(output, "data", "part-*.parquet"))):
        for row in pq.read_table(path).to_pylist():
            if row["status"] == "ok":
                row["frames"] = np.frombuffer(row["frames"], np.uint8).reshape(row["shape"])
                rows[row["id"]] = row
    return rows
