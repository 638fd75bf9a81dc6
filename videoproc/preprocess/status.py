"""`videoproc status OUTPUT`: what a run has done so far, read from its run state alone."""

from __future__ import annotations

from typing import Any

from videoproc.common import storage
from videoproc.preprocess.runstate import RunState, planned_shards
from videoproc.preprocess.summary import format_summary, summarize


def read_status(output: str, *, storage_options: dict | None = None) -> dict[str, Any]:
    state = RunState(storage.locate(output, storage_options=storage_options))
    run = state.load_run()
    if run is None:
        return {"exists": False, "output": output}
    shards = planned_shards(run)
    summary = summarize(state.committed(), shards=shards, elapsed_s=0.0, output=state.output.url)
    return {"exists": True, "created": run["created"], "summary": summary, "options": run["options"]}


def format_status(info: dict[str, Any]) -> str:
    if not info["exists"]:
        return f"no videoproc run found at {info['output']} (no _videoproc/run.json)"
    video = info["options"]["video"]
    sampling = (f"num_frames={video['num_frames']}" if video["num_frames"]
                else f"fps={video['fps']}, max_frames={video['max_frames']}")
    if video.get("clips"):
        sampling = "clips: " + ", ".join(f"{k}={v}" for k, v in video["clips"].items() if v is not None)
    size = "x".join(map(str, video["size"])) if video["size"] else "original"
    lines = [
        format_summary(info["summary"]),
        f"run created: {info['created']}",
        f"options: {sampling}, size={size}, resize_mode={video['resize_mode']}, "
        f"seek_mode={video['seek_mode']}, strict={video['strict']}, autorotate={video['autorotate']}",
    ]
    return "\n".join(lines)
