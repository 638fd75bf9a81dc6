"""Any other fsspec URL (s3://, gs://, az://, memory://...), read with range requests through the
per-worker block cache, so a manifest that repeats a URI fetches each block of it once."""

from __future__ import annotations

import fsspec

from videoproc.common.errors import SourceError, SourceNotFound, SourceRefused
from videoproc.source.cache import BlockReader, BlockStore, cache_key, open_cached
from videoproc.source.options import SourceOptions


def open_remote(uri: str, *, options: SourceOptions) -> BlockReader:
    try:
        fs, path = fsspec.core.url_to_fs(uri, **options.storage_options)
        return open_cached(
            cache_key(uri, options),
            entries=options.cache_entries,
            make_store=lambda budget: BlockStore(size=fs.size(path), budget=budget),
            fetch=lambda start, end: fs.cat_file(path, start=start, end=end),
        )
    except FileNotFoundError:
        raise SourceNotFound(f"object not found: {uri}") from None
    except (ValueError, ImportError) as exc:
        raise SourceRefused(f"cannot open {uri}: {exc}") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {uri}: {exc}") from exc
