"""Which http(s) URLs a manifest may make a worker fetch.

The manifest is data, not trusted code: a row pointing at http://169.254.169.254/ (cloud
metadata) or http://10.0.0.5/admin must not turn the job into a proxy into the private network.
A URL is checked after its host name is resolved (so `localhost`, `0x7f.1` or a DNS name that
points inside are caught), every resolved address must be public, and the caller connects to the
checked address itself, so a second, different DNS answer (DNS rebinding) cannot slip in between
the check and the connection. "Public" means outside every entry of the explicit deny list in
source.addresses; --allow-private-hosts names the private hosts a run may reach on purpose.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from videoproc.common.errors import SourceError, SourceRefused
from videoproc.source.addresses import IPAddress, PrivateHostRule, special_purpose_entry
from videoproc.source.options import SourceOptions

Scheme = Literal["http", "https"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where to connect for a URL: `host` goes in the Host header and TLS SNI; the checked
    addresses `ips` are dialled in order (never the host name, which could resolve anew)."""

    scheme: Scheme
    host: str
    port: int
    ips: tuple[str, ...]


def check_url(url: str, *, options: SourceOptions) -> Target:
    """Resolve `url` and return where to connect, or raise SourceError when it is refused."""
    scheme, host, port = split_url(url)
    check_domain(host, options.allowed_domains, url=url)
    addresses = resolve(host, port)
    if not options.allow_private_network:
        for ip in addresses:
            if not private_host_allowed(ip, host=host, port=port, rules=options.private_host_rules):
                check_public(ip, host=host, url=url)
    return Target(scheme=scheme, host=host, port=port, ips=tuple(dict.fromkeys(str(ip) for ip in addresses)))


def split_url(url: str) -> tuple[Scheme, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise SourceRefused(f"{redact(url)} is not an http(s) URL (scheme {scheme!r}); "
                            "only http:// and https:// are fetched over HTTP")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise SourceRefused(f"{redact(url)} has an invalid port; expected a number from 1 to 65535") from None
    if not parts.hostname:
        raise SourceRefused(f"{redact(url)} has no host name; expected {scheme}://HOST/PATH")
    return scheme, parts.hostname.rstrip("."), port  # type: ignore[return-value]


def check_domain(host: str, allowed: Collection[str], *, url: str) -> None:
    """With --allowed-domains, the host must be one of them or a subdomain of one."""
    if not allowed:
        return
    names = [d.strip().lower().lstrip("*").strip(".") for d in allowed]
    if any(host == d or host.endswith("." + d) for d in names if d):
        return
    raise SourceRefused(
        f"host {host!r} of {redact(url)} is not in --allowed-domains ({', '.join(allowed)}); "
        "a host must equal an allowed domain or be a subdomain of one; add it to --allowed-domains"
    )


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to; an IP literal resolves to itself without DNS."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SourceError(f"cannot resolve host {host!r}: {exc}; check the URL's host name") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise SourceError(f"host {host!r} resolved to no addresses; check the URL's host name")
    return addresses


def check_public(ip: IPAddress, *, host: str, url: str) -> None:
    entry = special_purpose_entry(ip)
    if entry is None:
        return
    shown = host if host == str(ip) else f"{host} ({ip})"
    named = (" (name it exactly: link-local and metadata addresses are never covered by a wider range)"
             if entry.named_only else "")
    raise SourceRefused(
        f"refused {redact(url)}: {shown} is a {entry.kind} address ({entry.network}, {entry.name}), and "
        f"URLs in a manifest may only reach public addresses; if this host is trusted, add it to "
        f"--allow-private-hosts{named}, or pass --allow-private-network to allow every private address"
    )


def non_public_reason(ip: IPAddress) -> str | None:
    """The kind of non-public address `ip` is ('loopback', 'private'...), None when public."""
    entry = special_purpose_entry(ip)
    return None if entry is None else entry.kind


def private_host_allowed(ip: IPAddress, *, host: str, port: int, rules: tuple[PrivateHostRule, ...]) -> bool:
    """Whether --allow-private-hosts lets a URL of `host`:`port` reach the non-public `ip`."""
    return any(rule.allows(ip, host=host, port=port) for rule in rules)


def redact(url: str) -> str:
    """The URL without user:password@, for error messages that end up in output rows."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
