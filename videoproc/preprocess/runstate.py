"""Run state: the plan of numbered shards, completion markers, and the resume rules.

Layout under OUTPUT:
  data/part-NNNNN.parquet          one shard, rows in manifest order
  _videoproc/run.json              plan (rows and shard size), manifest fingerprint, resolved options
                                   (written first; its size does not grow with the manifest)
  _videoproc/shards/part-NNNNN.json  the shard's stats: its completion marker, written after its data
  _videoproc/summary.json          the run summary, written last
  .videoproc.lock                  held by the live run (videoproc.common.runlock): one writer per output

Every run.json carries a run id, made when the output is started (or started over with --overwrite)
and kept by every resume; every marker carries the run id of the run that wrote it. A shard is
committed when its marker exists and carries the current run id, so a marker written by another
run (one whose lock was broken, still running after the output was started over) never counts.
A shard's data is durable before its marker is written, so a run killed at any moment leaves every
shard either committed or to be redone: resume skips the committed ones and the output ends with
exactly one row per manifest row. Everything here runs under the output's lock, so checking
run.json and then writing it is not a race.
"""

from __future__ import annotations

import posixpath
import time
import uuid
from dataclasses import dataclass
from typing import Any

from videoproc.common import storage
from videoproc.common.errors import ResumeError
from videoproc.common.runlock import LOCK_NAME

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
    """Shard k holds rows [k * shard_size, (k + 1) * shard_size): the plan follows from the two
    numbers, so run.json records those rather than a list that grows with the manifest."""
    starts = range(0, num_rows, shard_size)
    return tuple(Shard(index=i, start=s, stop=min(s + shard_size, num_rows)) for i, s in enumerate(starts))


class RunState:
    def __init__(self, output: storage.Location) -> None:
        self.output = output
        self.meta = output.child(META_DIR)
        self._run_id: str | None = None

    @property
    def run_id(self) -> str | None:
        """The id in run.json (None for an output made before run ids existed, or none yet)."""
        if self._run_id is None:
            run = self.load_run()
            self._run_id = run.get("run_id") if run else None
        return self._run_id

    def data_file(self, shard: Shard) -> storage.Location:
        return self.output.child(DATA_DIR, f"{shard.name}.parquet")

    def marker(self, shard: Shard) -> storage.Location:
        return self.meta.child("shards", f"{shard.name}.json")

    def load_run(self) -> dict[str, Any] | None:
        loc = self.meta.child("run.json")
        return storage.read_json(loc) if storage.exists(loc) else None

    def begin(self, *, shards: tuple[Shard, ...], shard_size: int, manifest: dict, fingerprint: dict,
              options: dict) -> bool:
        """Record the plan of a new run, or check that an existing one matches. True when resuming."""
        previous = self.load_run()
        if previous is not None:
            check_compatible(previous, manifest=manifest, fingerprint=fingerprint, where=self.output.url)
            self._run_id = previous.get("run_id")
            return True
        self._run_id = uuid.uuid4().hex
        run = {
            "format_version": 1,
            "run_id": self._run_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "manifest": manifest,
            "fingerprint": fingerprint,
            "options": options,
            "plan": {"rows": shards[-1].stop if shards else 0, "shard_size": shard_size, "shards": len(shards)},
        }
        storage.write_json_atomic(self.meta.child("run.json"), run)
        return False

    def committed(self) -> dict[str, dict[str, Any]]:
        """Stats of every committed shard of this run (markers of other run ids skipped), by shard name."""
        names = storage.list_names(self.meta.child("shards"))
        markers = [n for n in names if n.endswith(".json") and not n.startswith(".")]
        stats = {n[: -len(".json")]: storage.read_json(self.meta.child("shards", n)) for n in markers}
        return {name: s for name, s in stats.items() if s.get("run_id") == self.run_id}

    def commit(self, shard: Shard, stats: dict[str, Any]) -> None:
        storage.write_json_atomic(self.marker(shard), {**stats, "run_id": self.run_id})

    def uncommit(self, shard: Shard) -> None:
        storage.remove(self.marker(shard))

    def write_summary(self, summary: dict[str, Any]) -> None:
        storage.write_json_atomic(self.meta.child("summary.json"), summary)

    def wipe(self) -> None:
        """--overwrite: remove what a previous run wrote (its run state, its shards and their hidden
        temporary files), and nothing else under OUTPUT. A folder holding files but no run.json was
        not made by videoproc and is refused, before anything is deleted."""
        self.refuse_foreign()
        storage.remove(self.meta)
        data = self.output.child(DATA_DIR)
        for name in _all_names(data):
            if _is_shard_file(name):
                storage.remove(data.child(name))
        if data.is_local and data.fs.exists(data.path) and not data.fs.ls(data.path):
            data.fs.rmdir(data.path)

    def refuse_foreign(self) -> None:
        if storage.exists(self.meta.child("run.json")):
            return
        others = [n for n in _all_names(self.output) if n != LOCK_NAME]
        if others:
            listed = ", ".join(sorted(others)[:5])
            raise ResumeError(
                f"--overwrite refuses {self.output.url}: it holds files ({listed}) but no {META_DIR}/run.json, so "
                "it is not a videoproc output, and --overwrite deletes only what videoproc wrote. Choose a new or "
                "empty --output, or empty that folder yourself"
            )

    def clean_partials(self) -> None:
        """Remove temporary files a killed run left beside the shards (local outputs only). Called
        under the output's lock, so each belongs to a dead attempt, or to a run whose lock was broken
        (which no longer commits, and whose publish of that file then fails)."""
        data = self.output.child(DATA_DIR)
        if not data.is_local or not data.fs.exists(data.path):
            return
        for entry in data.fs.ls(data.path, detail=False):
            name = entry.rsplit("/", 1)[-1]
            if name.startswith(".") and name.endswith(".tmp"):
                data.fs.rm(entry)


def planned_shards(run: dict[str, Any]) -> tuple[Shard, ...]:
    """The plan a run.json records: rows and shard size, or the shard list older versions wrote."""
    if "plan" in run:
        return plan_shards(run["plan"]["rows"], run["plan"]["shard_size"])
    return tuple(Shard(**s) for s in run["shards"])


def _is_shard_file(name: str) -> bool:
    """data/part-NNNNN.parquet, or a hidden temporary of one (.part-NNNNN.parquet.<random>.tmp)."""
    if name.startswith(".part-") and name.endswith(".tmp"):
        return True
    return name.startswith("part-") and name.endswith(".parquet")


def _all_names(loc: storage.Location) -> list[str]:
    """Every entry directly inside `loc`, files and folders, hidden ones included."""
    try:
        entries = loc.fs.ls(loc.path, detail=False)
    except FileNotFoundError:
        return []
    names = (posixpath.basename(str(e).rstrip("/")) for e in entries)
    return [n for n in names if n]


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
