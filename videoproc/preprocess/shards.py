"""The unit of work: one planned shard, its rows, and the assembly of its results into a file.

A ShardWork names its rows ([start, stop) of the manifest index), never carries them: whoever runs
the shard loads them (ShardWork.load) from the manifest files, the local executor's parent a shard
or two ahead of its pool, a Ray task straight from storage. Both executors assemble with this: the
local pool feeds results in from worker processes, a Ray task runs the videos of its shard itself.
Either way rows are written in manifest order, so the same inputs give byte-identical shards.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from videoproc.common import storage
from videoproc.common.errors import StorageError
from videoproc.preprocess.manifest import GroupCache, ManifestIndex
from videoproc.preprocess.runstate import Shard
from videoproc.preprocess.write import ROWS_PER_GROUP, ShardWriter, result_rows
from videoproc.video.process import VideoResult, VideoTask

WRITE_BACKOFF_S = 0.5
EXAMPLE_WIDTH = 300  # characters of the example message kept per error kind in a shard's stats


@dataclass(frozen=True, kw_only=True)
class ShardWork:
    """Everything needed to produce one shard anywhere: small, whatever the shard's size.

    manifest: the index its rows are read from (load).
    keep: manifest positions of ok rows carried over unchanged from the committed shard file
    (--retry-failed); they are read from that file while the new one is assembled, so their
    frames never travel with the work (to a Ray task, say). In clip mode a position has a row per
    clip: a position's rows start at a row whose clip_index is 0 or null.
    """

    shard: Shard
    manifest: ManifestIndex = field(repr=False)
    keep: frozenset[int] = frozenset()
    kept_clips: int = 0
    retried: int = 0

    @property
    def todo(self) -> int:
        """Videos to process: the shard's rows less the kept ones."""
        return self.shard.stop - self.shard.start - len(self.keep)

    def load(self, *, cache: GroupCache | None = None) -> LoadedShard:
        """Read the shard's rows from the manifest: the tasks, and the pass-through columns."""
        table = self.manifest.rows_for(self.shard.start, self.shard.stop, cache=cache)
        ids, uris = table.column("id").to_pylist(), table.column("uri").to_pylist()
        rest = table.drop_columns(["id", "uri"]).to_pylist()
        tasks, passthrough = [], {}
        for offset, position in enumerate(range(self.shard.start, self.shard.stop)):
            if position not in self.keep:
                tasks.append(VideoTask(row=position, id=ids[offset], uri=uris[offset]))
                passthrough[position] = rest[offset]
        return LoadedShard(work=self, tasks=tuple(tasks), passthrough=passthrough)


@dataclass(frozen=True, kw_only=True)
class LoadedShard:
    """A shard's rows, read: tasks, the videos to process; passthrough, manifest columns by position."""

    work: ShardWork
    tasks: tuple[VideoTask, ...]
    passthrough: dict[int, dict[str, Any]] = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class ShardOutcome:
    """The stats of a written shard (the completion marker's content), or why it was not written."""

    shard: Shard
    stats: dict[str, Any] | None
    error: str | None = None


class ShardAssembler:
    """Collects a shard's results in any order and streams them to its writer in manifest order."""

    def __init__(self, loaded: LoadedShard, *, schema: pa.Schema, final: storage.Location, write_retries: int) -> None:
        work = loaded.work
        self.work = work
        self.passthrough = loaded.passthrough
        self.schema = schema
        self.final = final
        self.write_retries = write_retries
        self.started = time.monotonic()
        self._waiting: dict[int, VideoResult] = {}
        self._next = work.shard.start
        self._writer = ShardWriter(schema=schema, final=final)
        try:
            self._stats = _ShardStats()
            self._kept = self._read_kept() if work.keep else None
        except BaseException:  # Ctrl-C before the caller holds this assembler to abort it
            self._writer.abort()
            raise

    @property
    def complete(self) -> bool:
        return self._next >= self.work.shard.stop

    def add(self, result: VideoResult) -> None:
        self._waiting[result.row] = result
        self._stats.count(result)
        while self._next < self.work.shard.stop:
            rows = self._take(self._next)
            if rows is None:
                return
            for row in rows:
                self._writer.add(row)
            self._next += 1

    def finish(self) -> ShardOutcome:
        """Close the shard file and publish it, retrying storage errors a bounded number of times."""
        try:
            return self._finish()
        except BaseException:  # interrupted mid-write: leave no temporary file behind
            self._writer.abort()
            raise

    def _finish(self) -> ShardOutcome:
        self._writer.close()
        error = None
        for attempt in range(self.write_retries + 1):
            try:
                self._writer.publish()
                break
            except (OSError, StorageError) as exc:
                error = f"writing {self.final.url} failed after {attempt + 1} attempt(s): {exc}"
                time.sleep(WRITE_BACKOFF_S * 2**attempt)
        else:
            self._writer.abort()
            return ShardOutcome(shard=self.work.shard, stats=None, error=error)
        wall_s = time.monotonic() - self.started
        # The writer's own clock covers its flushes, close and publish; backoff sleeps are not writing.
        stats = self._stats.as_dict(self.work, write_s=self._writer.seconds, wall_s=wall_s)
        return ShardOutcome(shard=self.work.shard, stats=stats)

    def abort(self) -> None:
        self._writer.abort()

    def _read_kept(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """The kept rows of the committed shard by manifest position, in order, a row group at a
        time. The committed file stays in place (and readable) until the new one replaces it at publish."""
        with self.final.fs.open(self.final.path, "rb") as f:
            group: list[dict[str, Any]] = []
            position = self.work.shard.start - 1
            for batch in pq.ParquetFile(f).iter_batches(batch_size=ROWS_PER_GROUP):
                for row in batch.to_pylist():
                    if row.get("clip_index") not in (None, 0) and group:
                        group.append(row)  # the next clip of the same video
                        continue
                    if position in self.work.keep and group:
                        yield position, group
                    group, position = [row], position + 1
            if position in self.work.keep and group:
                yield position, group

    def _take(self, position: int) -> list[dict[str, Any]] | None:
        if position in self.work.keep:
            kept_position, rows = next(self._kept)
            assert kept_position == position, (kept_position, position)
            return rows
        result = self._waiting.pop(position, None)
        if result is None:
            return None
        columns = self.passthrough.pop(position)  # written once: free the manifest's values
        return [row | columns for row in result_rows(result)]


@dataclass
class _ShardStats:
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # clip mode: videos shorter than one clip, not failures
    clips: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)  # by error kind
    examples: dict[str, str] = field(default_factory=dict)  # the first message of each kind
    frames_decoded: int = 0
    frames_decoded_min: int = 0
    bytes_read: int = 0
    decode_s: float = 0.0

    def count(self, result: VideoResult) -> None:
        if result.status == "ok":
            self.ok += 1
            self.clips += len(result.clip_windows or ())
        elif result.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
            kind = result.error_kind or "unexpected"
            self.errors[kind] += 1
            self.examples.setdefault(kind, result.error or "")
        self.frames_decoded += result.frames_decoded
        self.frames_decoded_min += result.frames_decoded_min
        self.bytes_read += result.bytes_read
        self.decode_s += result.seconds

    def as_dict(self, work: ShardWork, *, write_s: float, wall_s: float) -> dict[str, Any]:
        return {
            "shard": work.shard.name,
            "rows": work.shard.stop - work.shard.start,
            "ok": self.ok + len(work.keep),  # only ok rows are kept
            "failed": self.failed,
            "skipped": self.skipped,
            "clips": self.clips + work.kept_clips,
            "retried": work.retried,
            "recovered": self.ok if work.retried else 0,
            "errors": dict(self.errors.most_common()),
            "error_examples": {kind: self.examples[kind][:EXAMPLE_WIDTH] for kind in self.errors},
            "frames_decoded": self.frames_decoded,
            "frames_decoded_min": self.frames_decoded_min,
            "bytes_read": self.bytes_read,
            "decode_s": round(self.decode_s, 4),
            "write_s": round(write_s, 4),
            "wall_s": round(wall_s, 4),
            "committed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

