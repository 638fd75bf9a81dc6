"""Which http(s) URLs a manifest may make a worker fetch.

The manifest is data, not trusted code: a row pointing at http://169.254.169.254/ (cloud
metadata) or http://10.0.0.5/admin must not turn the job into a proxy into the private network.
A URL is checked after its host name is resolved (so `localhost`, `0x7f.1` or a DNS name that
points inside are caught), every resolved address must be public, and the caller connects to the
checked address itself, so a second, different DNS answer (DNS rebinding) cannot slip in between
the check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from videoproc.errors import SourceError
from videoproc.options import SourceOptions

Scheme = Literal["http", "https"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where to connect for a URL: `host` goes in the Host header and TLS SNI; the checked
    addresses `ips` are dialled in order (never the host name, which could resolve anew)."""

    scheme: Scheme
    host: str
    port: int
    ips: tuple[str, ...]


def check_url(
    url: str,
    *,
    options: SourceOptions,
    trusted_private: Collection[tuple[str, int]] = (),
) -> Target:
    """Resolve `url` and return where to connect, or raise SourceError when it is refused.

    trusted_private: (ip, port) pairs allowed although private. For tests that serve from
    127.0.0.1 while checking the refusal of everything else; the CLI never sets it.
    """
    scheme, host, port = split_url(url)
    check_domain(host, options.allowed_domains, url=url)
    addresses = resolve(host, port)
    if not options.allow_private_network:
        for ip in addresses:
            if (str(ip), port) not in trusted_private:
                check_public(ip, host=host, url=url)
    return Target(scheme=scheme, host=host, port=port, ips=tuple(dict.fromkeys(str(ip) for ip in addresses)))


def split_url(url: str) -> tuple[Scheme, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise SourceError(f"{redact(url)} is not an http(s) URL (scheme {scheme!r}); only http:// and https:// are fetched over HTTP")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise SourceError(f"{redact(url)} has an invalid port; expected a number from 1 to 65535") from None
    if not parts.hostname:
        raise SourceError(f"{redact(url)} has no host name; expected {scheme}://HOST/PATH")
    return scheme, parts.hostname.rstrip("."), port  # type: ignore[return-value]


def check_domain(host: str, allowed: Collection[str], *, url: str) -> None:
    """With --allowed-domains, the host must be one of them or a subdomain of one."""
    if not allowed:
        return
    names = [d.strip().lower().lstrip("*").strip(".") for d in allowed]
    if any(host == d or host.endswith("." + d) for d in names if d):
        return
    raise SourceError(
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
    reason = non_public_reason(ip)
    if reason is None:
        return
    shown = host if host == str(ip) else f"{host} ({ip})"
    raise SourceError(
        f"refused {redact(url)}: {shown} is a {reason} address, and URLs in a manifest may only "
        "reach public addresses; pass --allow-private-network if this host is trusted"
    )


def non_public_reason(ip: IPAddress) -> str | None:
    """The kind of non-public address `ip` is, or None when it is globally routable."""
    ip = _embedded_ipv4(ip) or ip
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),  # 169.254.169.254: cloud metadata
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-global (shared or special-purpose)", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (::ffff:a.b.c.d, 2002:: 6to4, 64:ff9b:: NAT64)."""
    if ip.version == 4:
        return None
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def redact(url: str) -> str:
    """The URL without user:password@, for error messages that end up in output rows."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
