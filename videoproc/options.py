"""Resolved, validated options of a preprocess run.

Everything is checked here, before any work starts: a typo in a nightly job should fail in the
first second with the value, the rule and the fix, not after an hour of decoding. Option names
follow Dynamo's decoder config (fps, num_frames, max_frames, strict, max_alloc).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from videoproc.errors import OptionsError
from videoproc.memory import DEFAULT_MAX_ALLOC, default_worker_memory
from videoproc.runlock import DEFAULT_LEASE_S, MIN_LEASE_S

ResizeMode = Literal["stretch", "crop", "pad"]
SeekMode = Literal["exact", "keyframe"]
ExecutorName = Literal["local", "ray"]
ProgressMode = Literal["auto", "bar", "lines", "off"]

DEFAULT_NUM_FRAMES = 16
MAX_SIDE = 16384
MIN_WORKER_MEMORY = 512 * 2**20
_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """How each video becomes a frame tensor. Every field changes the output rows.

    num_frames: frames spread uniformly over the video (default 16 when fps is not set).
    fps: sample times per second of video; max_frames caps how many of them are kept.
    size: (width, height) in pixels, or None to keep the displayed source size.
    max_alloc: bytes a row may allocate (output tensor + one native-size RGB frame).
    """

    num_frames: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    size: tuple[int, int] | None = (224, 224)
    resize_mode: ResizeMode = "stretch"
    autorotate: bool = True
    strict: bool = False
    max_alloc: int = DEFAULT_MAX_ALLOC
    seek_mode: SeekMode = "exact"

    def __post_init__(self) -> None:
        _check_sampling(self.num_frames, self.fps, self.max_frames)
        if self.num_frames is None and self.fps is None:
            object.__setattr__(self, "num_frames", DEFAULT_NUM_FRAMES)
        _check_choice("resize_mode", self.resize_mode, ResizeMode)
        _check_choice("seek_mode", self.seek_mode, SeekMode)
        if self.size is not None:
            _check_size(self.size)
        _check_positive_int("max_alloc", self.max_alloc, hint="e.g. --max-alloc 512MiB")


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    """How video bytes are fetched, and which URIs are refused.

    Timeouts are seconds; byte limits are bytes. The manifest is data, not trusted code, so
    private-network URLs are refused unless allow_private_network is set (everything) or
    allow_private_hosts names them (CIDRs, addresses or host names, each with an optional port;
    link-local and metadata addresses only when named exactly).

    allowed_prefixes: URI prefixes every row must lie under (local paths compared as real paths,
    URLs after normalisation, at a path-segment boundary); () allows any location.
    own_output: the run's output location, which no row may read (set by the job, not a flag).
    total_timeout: seconds one open may spend fetching over http(s) in all, None for no limit.
    """

    storage_options: dict[str, Any] = field(default_factory=dict)
    allow_private_network: bool = False
    allow_private_hosts: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()
    allowed_prefixes: tuple[str, ...] = ()
    own_output: str | None = None
    local_root: str | None = None
    max_download_bytes: int = 4 * 2**30
    max_data_uri_bytes: int = 64 * 2**20
    data_media_types: tuple[str, ...] = ("video/*", "application/octet-stream")
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    http_retries: int = 3
    max_redirects: int = 5
    cache_entries: int = 4
    total_timeout: float | None = None

    def __post_init__(self) -> None:
        from videoproc.source.addresses import parse_private_hosts
        from videoproc.source.prefixes import normal_output, normalise_prefixes

        parse_private_hosts(tuple(self.allow_private_hosts))  # refuse a bad entry now, not per row
        object.__setattr__(self, "allowed_prefixes", normalise_prefixes(tuple(self.allowed_prefixes)))
        if self.own_output is not None:
            object.__setattr__(self, "own_output", normal_output(self.own_output))
        if self.total_timeout is not None:
            _check_positive_float("total_timeout", self.total_timeout, hint="seconds, e.g. 60")
        _check_positive_int("max_download_bytes", self.max_download_bytes, hint="e.g. 4GiB")
        _check_positive_int("max_data_uri_bytes", self.max_data_uri_bytes, hint="e.g. 64MiB")
        for name in ("connect_timeout", "read_timeout"):
            _check_positive_float(name, getattr(self, name), hint="seconds, e.g. 30")
        for name in ("http_retries", "max_redirects", "cache_entries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise OptionsError(f"{name} must be an integer, 0 or more (got {value!r})")
        if self.local_root is not None:
            object.__setattr__(self, "local_root", os.path.realpath(self.local_root))

    @property
    def private_host_rules(self):
        """allow_private_hosts parsed (cached per distinct tuple)."""
        from videoproc.source.addresses import parse_private_hosts

        return parse_private_hosts(tuple(self.allow_private_hosts))


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How the work is spread and reported. None of these change output rows except shard_size,
    which fixes the plan (manifest rows per shard) and so is checked on resume.

    worker_memory: address-space ceiling of each worker process in bytes (RLIMIT_AS); None derives
    it from max_alloc and the decoder threads (videoproc.memory.default_worker_memory), 0 sets none.
    Like timeout, it bounds resources and can fail a row that needs more, but never changes an ok
    row, so it is not part of the resume fingerprint: --retry-failed with a higher ceiling redoes
    exactly the rows that hit it.
    break_lock: take the output's object-storage lock from its holder (see videoproc.runlock).
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
        _check_positive_int("workers", self.workers, hint="e.g. --workers 4")
        _check_worker_memory(self.worker_memory)
        _check_positive_int("shard_size", self.shard_size, hint="e.g. --shard-size 1000")
        _check_positive_float("timeout", self.timeout, hint="seconds per video, e.g. --timeout 300")
        _check_choice("executor", self.executor, ExecutorName)
        _check_ray_address(self.executor, self.ray_address)
        _check_choice("progress", self.progress, ProgressMode)
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


def parse_json_object(value: Any, *, name: str = "--storage-options") -> dict[str, Any]:
    """A JSON object given as text (a flag) or already parsed (a job file); {} for nothing."""
    if isinstance(value, dict):
        return value
    if value is None or value == "":
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise OptionsError(f"{name} must be a JSON object (got {value!r}: {exc.msg}); "
                           f"e.g. '{{\"anon\": true}}'") from None
    if not isinstance(parsed, dict):
        raise OptionsError(f"{name} must be a JSON object like '{{\"anon\": true}}' (got {value!r})")
    return parsed


def parse_size(text: str) -> tuple[int, int] | None:
    """'224x224' -> (224, 224); 'original' -> None (keep the displayed source size)."""
    value = text.strip().lower()
    if value == "original":
        return None
    match = re.fullmatch(r"(\d+)\s*[x×]\s*(\d+)", value)
    if not match:
        raise OptionsError(
            f"size must be WIDTHxHEIGHT in pixels or 'original' (got {text!r}); e.g. --size 224x224"
        )
    size = (int(match[1]), int(match[2]))
    _check_size(size)
    return size


def parse_bytes(text: str | int) -> int:
    """'512MiB' -> 536870912. Accepts plain integers and k/M/G (1000) or KiB/MiB/GiB (1024)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(i?)b?", str(text).strip().lower())
    if not match or (match[3] and not match[2]):
        raise OptionsError(f"expected a byte count such as 536870912 or 512MiB (got {text!r})")
    unit = match[2] + ("ib" if match[3] else "")
    return int(float(match[1]) * _SIZE_UNITS[unit])


def _check_sampling(num_frames: int | None, fps: float | None, max_frames: int | None) -> None:
    if fps is not None and num_frames is not None:
        raise OptionsError(
            f"fps and num_frames cannot be specified at the same time (got fps={fps}, "
            f"num_frames={num_frames}); choose one"
        )
    if max_frames is not None and num_frames is not None:
        raise OptionsError(
            f"max_frames and num_frames cannot be specified at the same time (got max_frames="
            f"{max_frames}, num_frames={num_frames}); max_frames caps fps sampling"
        )
    if max_frames is not None and fps is None:
        raise OptionsError(
            f"max_frames caps fps sampling and needs fps (got max_frames={max_frames} without "
            "fps); add --fps F, or use --num-frames N for a fixed count"
        )
    if num_frames is not None:
        _check_positive_int("num_frames", num_frames, hint="e.g. --num-frames 16")
    if max_frames is not None:
        _check_positive_int("max_frames", max_frames, hint="e.g. --max-frames 64")
    if fps is not None:
        _check_positive_float("fps", fps, hint="frames per second of video, e.g. --fps 2")


def _check_worker_memory(value: Any) -> None:
    if value is None or value == 0:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < MIN_WORKER_MEMORY:
        raise OptionsError(
            f"worker_memory must be 0 (no ceiling) or at least {MIN_WORKER_MEMORY} bytes: an idle "
            f"worker alone maps about 250 MB of address space (got {value!r}); e.g. --worker-memory 4GiB"
        )


def check_lock_lease(value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < MIN_LEASE_S:
        raise OptionsError(
            f"lock_lease must be at least {MIN_LEASE_S:g} seconds (got {value!r}): the lease is renewed every "
            f"third of it; e.g. --lock-lease {DEFAULT_LEASE_S:g}"
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


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIDE:
            raise OptionsError(
                f"size {name} must be an integer from 1 to {MAX_SIDE} pixels (got {value!r}); "
                "e.g. --size 224x224"
            )


def _check_positive_int(name: str, value: Any, *, hint: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise OptionsError(f"{name} must be a positive integer, 1 or more (got {value!r}); {hint}")


def _check_positive_float(name: str, value: Any, *, hint: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise OptionsError(f"{name} must be a positive finite number (got {value!r}); {hint}")


def _check_choice(name: str, value: Any, choices: Any) -> None:
    allowed = choices.__args__
    if value not in allowed:
        raise OptionsError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
