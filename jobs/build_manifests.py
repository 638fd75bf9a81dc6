"""Builds the bundled sample manifest, manifests/sample.parquet, from media inside the repository.

Paths are relative to the repository root (where `make preprocess` runs). One row embeds a clip as a
data: URI to show that form, and one is a file:// URI, which is absolute and so names this checkout:
the Makefile rebuilds the manifest when the checkout moves, not on every run.
"""

from __future__ import annotations

import base64
import os

import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.common.testmedia import SAMPLE_CLIPS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = "manifests/media/real"
GENERATED = "manifests/media/generated"

ROWS = [
    ("carphone", f"{REAL}/carphone_pristine.mp4", "a man talking on a phone in a car", "real"),
    ("nasa", f"{REAL}/nasa_13013.mp4", "NASA footage, two video streams", "real"),
    ("bunny", f"{REAL}/big_buck_bunny_432_433.webm", "Big Buck Bunny (c) Blender Foundation, CC-BY 3.0", "real"),
    ("av1", f"{REAL}/av1_video.mkv", "AV1 in Matroska", "real"),
    ("ten-bit", f"{REAL}/h264_10bits.mp4", "10-bit H.264", "real"),
    ("rotated-phone", f"{REAL}/video_90.mov", "phone video with display rotation", "real"),
    ("no-duration", f"{REAL}/no_duration.webm", "VP9 without a duration in its header", "real"),
    ("damaged", f"{REAL}/corrupted.mp4", "damaged H.264 bitstream, concealed", "real"),
    ("testsrc", f"file://{{root}}/{GENERATED}/testsrc_h264_3s.mp4", "synthetic test pattern", "generated"),
    ("rotated", f"{GENERATED}/rotated_90.mp4", "test pattern with a 90 degree display matrix", "generated"),
    ("vfr", f"{GENERATED}/vfr.mkv", "variable frame rate: 10 fps then 40 fps", "generated"),
]


def data_uri(path: str) -> str:
    with open(path, "rb") as f:
        return "data:video/mp4;base64," + base64.b64encode(f.read()).decode()


def build_sample() -> str:
    for clip in SAMPLE_CLIPS:
        clip.make(os.path.join(ROOT, GENERATED))
    ids, uris, captions, kinds = [], [], [], []
    for row_id, uri, caption, kind in ROWS:
        ids.append(row_id)
        uris.append(uri.replace("{root}", ROOT))
        captions.append(caption)
        kinds.append(kind)
    ids.append("hevc-inline")
    uris.append(data_uri(os.path.join(ROOT, REAL, "h265_video.mp4")))
    captions.append("HEVC open-GOP clip embedded as a data: URI")
    kinds.append("real")
    table = pa.table({"id": ids, "uri": uris, "caption": captions, "kind": kinds})
    out = os.path.join(ROOT, "manifests", "sample.parquet")
    pq.write_table(table, out)
    return out


if __name__ == "__main__":
    print(f"wrote {build_sample()}")
