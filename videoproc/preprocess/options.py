"""Resolved, validated options of a preprocess run: how the work is spread and reported, and the
whole run's record (the video, source and run options together).

Everything is checked here, before any work starts: a typo in a nightly job should fail in the
first second with the value, the rule and the fix, not after an hour of decoding.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from videoproc.common.checks import check_choice, check_positive_float, check_positive_int
from videoproc.common.errors import OptionsError
from videoproc.common.memory import default_worker_memory
from videoproc.common.progress import ProgressMode
from videoproc.common.runlock import DEFAULT_LEASE_S, check_lock_lease
from videoproc.source.options import SourceOptions
from videoproc.video.options import VideoOptions

ExecutorName = Literal["local", "ray"]

MIN_WORKER_MEMORY = 512 * 2**20


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How the work is spread and reported. None of these change output rows except shard_size,
    which fixes the plan (manifest rows per shard) and so is checked on resume.

    worker_memory: address-space ceiling of each worker process in bytes (RLIMIT_AS); None derives
    it from max_alloc and the decoder threads (videoproc.common.memory.default_worker_memory), 0 sets none.
    Like timeout, it bounds resources and can fail a row that needs more, but never changes an ok
    row, so it is not part of the resume fingerprint: --retry-failed with a higher ceiling redoes
    exactly the rows that hit it.
    break_lock: take the output's object-storage lock from its holder (see videoproc.common.runlock).
    lock_lease: seconds an object-storage lock lasts without renewal; a killed run's lock expires
    this long after its last renewal (default 60; local outputs use a kernel lock and ignore it).
    """

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    shard_size: int = 1000
    timeout: float = 300.0
    decoder_threads: int = 0
    executor: ExecutorName = "local"
    ray_address: str | None = None
    progress: ProgressMode = "auto"
    overwrite: bool = False
    retry_failed: bool = False
    write_retries: int = 3
    worker_memory: int | None = None
    break_lock: bool = False
    lock_lease: float = DEFAULT_LEASE_S

    def __post_init__(self) -> None:
        check_lock_lease(self.lock_lease)
        check_positive_int("workers", self.workers, hint="e.g. --workers 4")
        _check_worker_memory(self.worker_memory)
        check_positive_int("shard_size", self.shard_size, hint="e.g. --shard-size 1000")
        check_positive_float("timeout", self.timeout, hint="seconds per video, e.g. --timeout 300")
        check_choice("executor", self.executor, ExecutorName)
        _check_ray_address(self.executor, self.ray_address)
        check_choice("progress", self.progress, ProgressMode)
        if self.decoder_threads < 0:
            raise OptionsError(
                f"decoder_threads must be 0 (automatic) or a positive count (got {self.decoder_threads})"
            )
        if self.overwrite and self.retry_failed:
            raise OptionsError(
                "overwrite and retry_failed cannot be specified at the same time: --overwrite starts "
                "over, --retry-failed keeps the output and redoes its failed rows; choose one"
            )

    def threads_per_decoder(self) -> int:
        """One decoder thread per worker when the pool fills the cores; more when it does not."""
        if self.decoder_threads:
            return self.decoder_threads
        return max(1, (os.cpu_count() or 1) // self.workers)


@dataclass(frozen=True, kw_only=True)
class PreprocessOptions:
    manifest: str
    output: str
    uri_column: str = "uri"
    id_column: str = "id"
    video: VideoOptions = field(default_factory=VideoOptions)
    source: SourceOptions = field(default_factory=SourceOptions)
    run: RunOptions = field(default_factory=RunOptions)

    def worker_memory_limit(self, *, threads: int) -> int | None:
        """Each worker's address-space ceiling in bytes for `threads` decoder threads; None: none."""
        if self.run.worker_memory == 0:
            return None
        return self.run.worker_memory or default_worker_memory(self.video.max_alloc, threads=threads)

    def result_fingerprint(self) -> dict[str, Any]:
        """The options that change output rows; a resume with different values is refused."""
        video = dataclasses.asdict(self.video)
        video["size"] = list(self.video.size) if self.video.size else None
        if video["clips"] is None:
            del video["clips"]  # outputs made before clip mode existed still resume
        del video["store"]
        if not self.video.store.is_default:  # raw outputs made before frame formats existed still resume
            video["frame_format"] = self.video.store.fingerprint()
        return {
            "video": video,
            "shard_size": self.run.shard_size,
            "uri_column": self.uri_column,
            "id_column": self.id_column,
        }

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["source"]["storage_options"] = sorted(self.source.storage_options)  # keys only: secrets
        return data


def _check_worker_memory(value: Any) -> None:
    if value is None or value == 0:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < MIN_WORKER_MEMORY:
        raise OptionsError(
            f"worker_memory must be 0 (no ceiling) or at least {MIN_WORKER_MEMORY} bytes: an idle "
            f"worker alone maps about 250 MB of address space (got {value!r}); e.g. --worker-memory 4GiB"
        )


def _check_ray_address(executor: str, address: str | None) -> None:
    if address is None:
        return
    if executor != "ray":
        raise OptionsError(
            f"ray_address is set ({address!r}) but the executor is {executor!r}; add --executor ray "
            "or drop --ray-address"
        )
    if address != "auto" and not re.fullmatch(r"(ray://)?\[?[\w.:-]+\]?:\d{1,5}", address):
        raise OptionsError(
            f"ray_address must be 'auto', HOST:PORT or ray://HOST:PORT (got {address!r}); e.g. "
            "--ray-address 10.0.0.5:6379"
        )
