"""The facts and poster-frame strips of a generation output.

Layout read: OUTPUT/videos/<key>.mp4 (the record's `key`: its id when safe as a file name), the
records in OUTPUT/records.parquet (or, while a run is still going, its per-request
OUTPUT/records/*.parquet) and the run's settings in OUTPUT/run.json.
"""

from __future__ import annotations

import posixpath
import random
from typing import Any

import numpy as np
import pyarrow as pa

from videoproc.common import storage
from videoproc.report.facts import FAILED_LIMIT, Inspection, count_errors
from videoproc.report.sheet import Strip, pick

VIDEOS_DIR = "videos"
PROMPT_CHARS = 60


def is_generation_output(out: storage.Location) -> bool:
    """A generation output has a videos/ folder or records, and no preprocess run state."""
    if storage.exists(out.child("_videoproc", "run.json")):
        return False
    return any(storage.exists(out.child(name)) for name in (VIDEOS_DIR, "records.parquet", "records"))


def inspect_generation(out: storage.Location, *, sample: int, max_frames: int, seed: int) -> Inspection:
    records = read_records(out)
    by_key = {r.get("key") or r["id"]: r for r in records}
    videos = video_names(out)
    chosen = videos if len(videos) <= sample else sorted(random.Random(seed).sample(videos, sample))
    strips = [poster_strip(out.child(VIDEOS_DIR, name), record=by_key.get(name[:-4]), max_frames=max_frames)
              for name in chosen]
    failed = [r for r in records if r.get("status") != "completed"]
    statuses = {"completed": len(records) - len(failed), "failed": len(failed)}
    run = out.child("run.json")
    return Inspection(
        output=out.url, kind="generate", statuses=statuses, top_errors=count_errors(r.get("error") for r in failed),
        notes=(f"videos: {len(videos)} MP4 files in {VIDEOS_DIR}/",),
        options=storage.read_json(run) if storage.exists(run) else {},
        failed=tuple({k: r.get(k) for k in ("id", "prompt", "error")} for r in failed[:FAILED_LIMIT]),
        strips=tuple(strips),
    )


def read_records(out: storage.Location) -> list[dict[str, Any]]:
    """The records as dicts without their base64 payloads, in queue order when known."""
    table = _records_table(out)
    if table is None:
        return []
    keep = [n for n in table.schema.names if n != "b64_json"]
    rows = table.select(keep).to_pylist()
    return sorted(rows, key=lambda r: (r.get("queue_row") is None, r.get("queue_row") or 0, r["id"]))


def video_names(out: storage.Location) -> list[str]:
    """The published MP4 files (partial encodes are hidden dot-files and are skipped)."""
    names = storage.list_names(out.child(VIDEOS_DIR))
    return [n for n in names if n.endswith(".mp4") and not n.startswith(".")]


def poster_strip(video: storage.Location, *, record: dict[str, Any] | None, max_frames: int) -> Strip:
    """`max_frames` frames spread evenly over the video, with their presentation times."""
    frames, times = decode_all(video)
    shown = pick(len(frames), max_frames)
    stem = posixpath.basename(video.path)[:-4]
    prompt = (record or {}).get("prompt") or ""
    label = f"{stem}  {len(frames)} frames" + (f"  {prompt[:PROMPT_CHARS]}" if prompt else "")
    return Strip(label=label, frames=tuple(frames[i] for i in shown), captions=tuple(f"{times[i]:.2f}s" for i in shown))


def decode_all(video: storage.Location) -> tuple[list[np.ndarray], list[float]]:
    """Every frame of the first video stream as RGB (H, W, 3) uint8, and its time in seconds.
    Generated clips are seconds long, so decoding them whole is cheap and needs no seeking."""
    import av

    frames, times = [], []
    with video.fs.open(video.path, "rb") as f, av.open(f) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time or 0.0))
    return frames, times


def _records_table(out: storage.Location) -> pa.Table | None:
    # The per-request files are the truth and records.parquet is rebuilt from them at the end of a
    # run; use the one consolidated file unless a run has added records since.
    folder = out.child("records")
    names = [n for n in storage.list_names(folder) if n.endswith(".parquet") and not n.startswith(".")]
    consolidated = _read_parquet(out.child("records.parquet"))
    if consolidated is not None and _files_seen(consolidated) >= len(names):
        return consolidated
    tables = [_read_parquet(folder.child(name)) for name in names]
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def _files_seen(consolidated: pa.Table) -> int:
    """How many record files records.parquet was built from (earlier records of edited rows
    included); its row count when written before it said."""
    seen = (consolidated.schema.metadata or {}).get(b"videoproc.record_files")  # records.RECORD_FILES_KEY
    return int(seen) if seen is not None else consolidated.num_rows


def _read_parquet(loc: storage.Location) -> pa.Table | None:
    if not storage.exists(loc):
        return None
    return storage.read_parquet(loc)
