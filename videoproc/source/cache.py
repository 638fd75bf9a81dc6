"""Seekable range-read file objects over any `fetch(start, end)`, and a small per-process cache.

A demuxer reads 32 KiB at a time and seeks (to the MP4 index at the end, then to each sampled
keyframe), so remote bytes are fetched in small aligned blocks and kept, least recently used
dropped first. A miss fetches as many blocks as were just read back to back (so a full scan
doubles its requests up to MAX_READAHEAD and costs a handful of them), and a jump starts again at
one block, so sampling a few frames fetches little more than the demuxer reads.

The blocks of recently opened objects stay in a per-process cache (SourceOptions.cache_entries
objects, CACHE_MAX_BYTES in all), so a URI repeated in one manifest is fetched once per worker.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from videoproc.source.options import SourceOptions

# Measured on a 30 s 320x240 short-GOP MP4, 16 frames: 64 KiB blocks fetch 47% of the file,
# 128 KiB 63%, 256 KiB 92% (the demuxer itself reads 28%); small blocks cost requests only on
# jumps, since back-to-back reads grow their requests.
BLOCK_SIZE = 64 * 2**10
MAX_READAHEAD = 8 * 2**20
# Per worker process, over all cached objects: a worker pool of 16 holds at most 4 GiB.
CACHE_MAX_BYTES = 256 * 2**20
# Blocks one open object may keep when the cache is off (cache_entries=0).
UNCACHED_BUDGET = 64 * 2**20

Fetch = Callable[[int, int], bytes]  # the bytes [start, end) of the object


class BlockStore:
    """Aligned BLOCK_SIZE blocks of one object of `size` bytes, at most `budget` bytes of them."""

    def __init__(self, *, size: int, budget: int, version: str | None = None) -> None:
        self.size = size
        self.budget = budget
        self.version = version  # e.g. a strong ETag: fetches after a reopen must match it
        self.nbytes = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, index: int) -> bytes | None:
        with self._lock:
            data = self._blocks.get(index)
            if data is not None:
                self._blocks.move_to_end(index)
            return data

    def has(self, index: int) -> bool:
        return index in self._blocks

    def put(self, index: int, data: bytes) -> None:
        with self._lock:
            self.nbytes += len(data) - len(self._blocks.pop(index, b""))
            self._blocks[index] = data
            while self.nbytes > self.budget and len(self._blocks) > 1:
                self.nbytes -= len(self._blocks.popitem(last=False)[1])

    def put_range(self, start: int, data: bytes) -> None:
        """Store `data` read from aligned offset `start`, block by block."""
        for offset in range(0, len(data), BLOCK_SIZE):
            self.put((start + offset) // BLOCK_SIZE, data[offset : offset + BLOCK_SIZE])


class BlockReader(io.RawIOBase):
    """A read-only, seekable file over `fetch`, served from `store` where it can be."""

    def __init__(self, store: BlockStore, fetch: Fetch, *, on_close: Callable[[], None] | None = None) -> None:
        self.store = store
        self._store = store
        self._fetch = fetch
        self._on_close = on_close
        self._pos = 0
        self._read_end = 0  # where the last read stopped: a read starting elsewhere is a jump
        self._streak_start = 0  # where the current run of back-to-back reads began

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def size(self) -> int:
        return self._store.size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._store.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        left = max(0, self._store.size - self._pos)
        size = left if size is None or size < 0 else min(size, left)
        if self._pos != self._read_end:
            self._streak_start = self._pos
        out = bytearray()
        while len(out) < size:
            block = self._block(self._pos // BLOCK_SIZE)
            offset = self._pos % BLOCK_SIZE
            piece = block[offset : offset + size - len(out)]
            out += piece
            self._pos += len(piece)
        self._read_end = self._pos
        return bytes(out)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            self._on_close()
        super().close()

    def _block(self, index: int) -> bytes:
        block = self._store.get(index)
        return block if block is not None else self._fill(index)

    def _fill(self, index: int) -> bytes:
        count = self._run_length(index)
        start = index * BLOCK_SIZE
        data = self._fetch(start, min(self._store.size, start + count * BLOCK_SIZE))
        self._store.put_range(start, data)
        return data[:BLOCK_SIZE]

    def _run_length(self, index: int) -> int:
        """Blocks to fetch at a miss: as many as were read back to back before it (so a long
        sequential read doubles its requests), at least one, at most MAX_READAHEAD, and never
        past a block already held."""
        streak = index * BLOCK_SIZE - self._streak_start
        wanted = min(max(1, -(-streak // BLOCK_SIZE)), MAX_READAHEAD // BLOCK_SIZE)
        last = -(-self._store.size // BLOCK_SIZE)
        count = 1
        while count < wanted and index + count < last and not self._store.has(index + count):
            count += 1
        return count


class ObjectCache:
    """Least recently used BlockStores by key, at most `entries` of them and `max_bytes` in all."""

    def __init__(self, *, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._stores: OrderedDict[Hashable, BlockStore] = OrderedDict()
        self._lock = threading.Lock()

    def budget(self, entries: int) -> int:
        """Bytes one object may keep so that `entries` of them fit in max_bytes."""
        return self.max_bytes // entries if entries > 0 else UNCACHED_BUDGET

    def get(self, key: Hashable) -> BlockStore | None:
        with self._lock:
            store = self._stores.get(key)
            if store is not None:
                self._stores.move_to_end(key)
            return store

    def put(self, key: Hashable, store: BlockStore, *, entries: int) -> None:
        if entries <= 0:
            return
        with self._lock:
            self._stores[key] = store
            self._stores.move_to_end(key)
            while len(self._stores) > entries:
                self._stores.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._stores.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._stores.clear()

    def __len__(self) -> int:
        return len(self._stores)


# One per worker process (each process of the pool imports its own).
CACHE = ObjectCache()


@dataclass(frozen=True, kw_only=True)
class CacheKey:
    """What must match for a cached object to be reused: the URI and the options that decide
    whether it may be fetched at all (so a cached copy never bypasses a stricter check)."""

    uri: str
    allow_private_network: bool
    allowed_domains: tuple[str, ...]
    allow_private_hosts: tuple[str, ...] = ()
    allowed_prefixes: tuple[str, ...] = ()


def cache_key(uri: str, options: SourceOptions) -> CacheKey:
    return CacheKey(
        uri=uri,
        allow_private_network=options.allow_private_network,
        allowed_domains=tuple(options.allowed_domains),
        allow_private_hosts=tuple(options.allow_private_hosts),
        allowed_prefixes=tuple(options.allowed_prefixes),
    )


def open_cached(
    key: CacheKey,
    *,
    entries: int,
    make_store: Callable[[int], BlockStore],
    fetch: Fetch,
    on_close: Callable[[], None] | None = None,
) -> BlockReader:
    """A reader over the cached blocks of `key`, or over a new store from make_store(budget)
    (which may fetch, e.g. to learn the size) that is then cached. A fetch that fails drops the
    entry, so a failure is never what the next open of the URI finds."""
    store = CACHE.get(key)
    if store is None:
        store = make_store(CACHE.budget(entries))
    CACHE.put(key, store, entries=entries)
    return BlockReader(store, _forget_on_error(fetch, key), on_close=on_close)


def _forget_on_error(fetch: Fetch, key: CacheKey) -> Fetch:
    def fetch_or_forget(start: int, end: int) -> bytes:
        try:
            return fetch(start, end)
        except Exception:
            CACHE.discard(key)
            raise

    return fetch_or_forget
