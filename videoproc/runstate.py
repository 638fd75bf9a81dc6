"""Run state: the plan of numbered shards, completion markers, and the resume rules.

Layout under OUTPUT:
  data/part-NNNNN.parquet          one shard, rows in manifest order
  _videoproc/run.json              plan, manifest fingerprint, resolved options (written first)
  _videoproc/shards/part-NNNNN.json  the shard's stats: its completion marker, written after its data
  _videoproc/summary.json          the run summary, written last

A shard is committed when its marker exists. Its data is durable before the marker is written, so
a run killed at any moment leaves every shard either committed or to be redone: resume skips the
committed ones and the output ends with exactly one row per manifest row.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from videoproc import storage
from videoproc.errors import ResumeError

META_DIR = "_videoproc"
DATA_DIR = "data"


@dataclass(frozen=True, kw_only=True)
class Shard:
    """Manifest rows [start, stop) written to data/<name>.parquet."""

    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}"


def plan_shards(num_rows: int, shard_size: int) -> tuple[Shard, ...]:
    starts = range(0, num_rows, shard_size)
    return tuple(Shard(index=i, start=s, stop=min(s + shard_size, num_rows)) for i, s in enumerate(starts))


class RunState:
    def __init__(self, output: storage.Location) -> None:
        self.output = output
        self.meta = output.child(META_DIR)

    def data_file(self, shard: Shard) -> storage.Location:
        return self.output.child(DATA_DIR, f"{shard.name}.parquet")

    def marker(self, shard: Shard) -> storage.Location:
        return self.meta.child("shards", f"{shard.name}.json")

    def load_run(self) -> dict[str, Any] | None:
        loc = self.meta.child("run.json")
        return storage.read_json(loc) if storage.exists(loc) else None

    def begin(self, *, shards: tuple[Shard, ...], manifest: dict, fingerprint: dict, options: dict) -> bool:
        """Record the plan of a new run, or check that an existing one matches. True when resuming."""
        previous = self.load_run()
        if previous is not None:
            check_compatible(previous, manifest=manifest, fingerprint=fingerprint, where=self.output.url)
            return True
        run = {
            "format_version": 1,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "manifest": manifest,
            "fingerprint": fingerprint,
            "options": options,
            "shards": [asdict(s) for s in shards],
        }
        storage.write_json_atomic(self.meta.child("run.json"), run)
        return False

    def committed(self) -> dict[str, dict[str, Any]]:
        """Stats of every committed shard, by shard name."""
        names = storage.list_names(self.meta.child("shards"))
        markers = [n for n in names if n.endswith(".json") and not n.startswith(".")]
        return {n[: -len(".json")]: storage.read_json(self.meta.child("shards", n)) for n in markers}

    def commit(self, shard: Shard, stats: dict[str, Any]) -> None:
        storage.write_json_atomic(self.marker(shard), stats)

    def uncommit(self, shard: Shard) -> None:
        storage.remove(self.marker(shard))

    def write_summary(self, summary: dict[str, Any]) -> None:
        storage.write_json_atomic(self.meta.child("summary.json"), summary)

    def wipe(self) -> None:
        """--overwrite: remove what a previous run wrote, and nothing else under OUTPUT."""
        storage.remove(self.meta)
        storage.remove(self.output.child(DATA_DIR))

    def clean_partials(self) -> None:
        """Remove temporary files a killed run left beside the shards (local outputs only)."""
        data = self.output.child(DATA_DIR)
        if not data.is_local or not data.fs.exists(data.path):
            return
        for entry in data.fs.ls(data.path, detail=False):
            name = entry.rsplit("/", 1)[-1]
            if name.startswith(".") and name.endswith(".tmp"):
                data.fs.rm(entry)


def check_compatible(previous: dict, *, manifest: dict, fingerprint: dict, where: str) -> None:
    """Refuse to resume when the manifest or a result-changing option differs, saying what."""
    _check_fingerprint_version(previous.get("manifest", {}), manifest, where)
    differences = _diff("manifest", previous.get("manifest", {}), manifest)
    differences += _diff("option", previous.get("fingerprint", {}), fingerprint)
    if differences:
        listed = "; ".join(differences[:8])
        raise ResumeError(
            f"output {where} was made by a run with a different plan: {listed}. Resuming would mix "
            "incompatible rows; re-run with --overwrite to start over, or choose another --output"
        )


def _check_fingerprint_version(old: dict, new: dict, where: str) -> None:
    # Version 1 (no version key) hashed only ids and uris: it cannot tell whether a pass-through
    # column changed, so an output it made cannot be checked against this manifest.
    was, now = old.get("fingerprint_version", 1), new.get("fingerprint_version", 1)
    if was != now:
        raise ResumeError(
            f"output {where} was made by a videoproc whose manifest fingerprint is version {was}; this "
            f"one writes version {now}, which cannot be compared with it, so whether the manifest changed "
            "is unknown. Re-run with --overwrite to start over, or choose another --output"
        )


def _diff(kind: str, old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(kind, a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{kind} {prefix}{key} was {_short(a)}, now {_short(b)}")
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:12] + "…"
