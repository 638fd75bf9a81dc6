"""How video bytes are fetched, and which URIs are refused: the options of the source stage."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from videoproc.common.checks import check_positive_float, check_positive_int
from videoproc.common.errors import OptionsError
from videoproc.source.addresses import parse_private_hosts
from videoproc.source.prefixes import normal_output, normalise_prefixes


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
        parse_private_hosts(tuple(self.allow_private_hosts))  # refuse a bad entry now, not per row
        object.__setattr__(self, "allowed_prefixes", normalise_prefixes(tuple(self.allowed_prefixes)))
        if self.own_output is not None:
            object.__setattr__(self, "own_output", normal_output(self.own_output))
        if self.total_timeout is not None:
            check_positive_float("total_timeout", self.total_timeout, hint="seconds, e.g. 60")
        check_positive_int("max_download_bytes", self.max_download_bytes, hint="e.g. 4GiB")
        check_positive_int("max_data_uri_bytes", self.max_data_uri_bytes, hint="e.g. 64MiB")
        for name in ("connect_timeout", "read_timeout"):
            check_positive_float(name, getattr(self, name), hint="seconds, e.g. 30")
        for name in ("http_retries", "max_redirects", "cache_entries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise OptionsError(f"{name} must be an integer, 0 or more (got {value!r})")
        if self.local_root is not None:
            object.__setattr__(self, "local_root", os.path.realpath(self.local_root))

    @property
    def private_host_rules(self):
        """allow_private_hosts parsed (cached per distinct tuple)."""
        return parse_private_hosts(tuple(self.allow_private_hosts))
