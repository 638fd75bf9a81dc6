"""Run summaries: per-shard stats merged into one record, and its text form for people.

Failed rows are counted by their error kind (videoproc.common.errors.ERROR_KINDS), each with an
example message: `top_errors` maps kind -> rows, `error_examples` kind -> a message. Shards committed
before rows had kinds count by the head of the message instead, without an example."""

from __future__ import annotations

import collections
from typing import Any

from videoproc.common.counts import RunCounts
from videoproc.preprocess.runstate import Shard


def summarize(
    committed: dict[str, dict[str, Any]],
    *,
    shards: tuple[Shard, ...],
    elapsed_s: float,
    output: str,
    resumed: bool = False,
    write_errors: list[str] | None = None,
) -> dict[str, Any]:
    done = [committed[s.name] for s in shards if s.name in committed]
    errors: collections.Counter = collections.Counter()
    examples: dict[str, str] = {}
    for stats in done:
        errors.update(stats.get("errors", {}))
        for kind, message in stats.get("error_examples", {}).items():
            examples.setdefault(kind, message)
    ok = sum(s["ok"] for s in done)
    failed = sum(s["failed"] for s in done)
    skipped = sum(s.get("skipped", 0) for s in done)
    decoded = sum(s.get("frames_decoded", 0) for s in done)
    write_s = sum(s.get("write_s", 0.0) for s in done)
    return {
        "output": output,
        "resumed": resumed,
        "rows_total": shards[-1].stop if shards else 0,
        "rows_ok": ok,
        "rows_failed": failed,
        "rows_skipped": skipped,
        "clips_ok": sum(s.get("clips", 0) for s in done),
        "rows_recovered": sum(s.get("recovered", 0) for s in done),
        "shards_total": len(shards),
        "shards_committed": len(done),
        "shards_pending": len(shards) - len(done),
        "top_errors": dict(errors.most_common(10)),
        "error_examples": {kind: examples[kind] for kind in dict(errors.most_common(10)) if kind in examples},
        "frames_decoded": decoded,
        "frames_decoded_min": sum(s.get("frames_decoded_min", 0) for s in done),
        "bytes_read": sum(s.get("bytes_read", 0) for s in done),
        "write_s": round(write_s, 3),
        "elapsed_s": round(elapsed_s, 3),
        "write_errors": write_errors or [],
    }


def run_counts(summary: dict[str, Any]) -> RunCounts:
    """The counts every stage reports (and the exit status they give) from a summary of summarize()."""
    return RunCounts(total=summary["rows_total"], ok=summary["rows_ok"], failed=summary["rows_failed"],
                     left=summary["shards_pending"])


def format_summary(summary: dict[str, Any], *, throughput: float | None = None) -> str:
    lines = [
        f"output: {summary['output']}",
        f"rows: {summary['rows_total']} total, {summary['rows_ok']} ok, {summary['rows_failed']} failed"
        + (f", {summary['rows_skipped']} skipped" if summary.get("rows_skipped") else "")
        + (f" ({summary['clips_ok']} clips)" if summary.get("clips_ok") else "")
        + (f", {summary['rows_recovered']} recovered by retry" if summary.get("rows_recovered") else ""),
        f"shards: {summary['shards_committed']}/{summary['shards_total']} committed"
        + (f", {summary['shards_pending']} pending (re-run to finish)" if summary["shards_pending"] else ""),
    ]
    if throughput is not None:
        lines.append(f"throughput: {throughput:.2f} videos/s over {summary['elapsed_s']:.1f} s")
    if summary["top_errors"]:
        lines.append("most common errors (kind, rows, an example):")
        examples = summary.get("error_examples", {})
        lines += [f"  {count:>6}  {kind}" + (f"  e.g. {examples[kind]}" if kind in examples else "")
                  for kind, count in summary["top_errors"].items()]
    for error in summary.get("write_errors", [])[:5]:
        lines.append(f"shard error: {error}")
    return "\n".join(lines)
