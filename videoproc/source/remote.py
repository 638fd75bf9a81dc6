"""Any other fsspec URL (s3://, gs://, az://, memory://...), read with range requests."""

from __future__ import annotations

from typing import BinaryIO

import fsspec

from videoproc.errors import SourceError
from videoproc.options import SourceOptions

# Large enough that a demuxer's small sequential reads become few requests, small enough that a
# seek to a far keyframe does not drag megabytes of unused data with it.
BLOCK_SIZE = 1 * 2**20


def open_remote(uri: str, *, options: SourceOptions) -> BinaryIO:
    try:
        fs, path = fsspec.core.url_to_fs(uri, **options.storage_options)
        return fs.open(path, "rb", block_size=BLOCK_SIZE, cache_type="readahead")
    except FileNotFoundError:
        raise SourceError(f"object not found: {uri}") from None
    except (ValueError, ImportError) as exc:
        raise SourceError(f"cannot open {uri}: {exc}") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {uri}: {exc}") from exc
