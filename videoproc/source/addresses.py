"""Which IP addresses count as non-public, and which of them --allow-private-hosts lets through.

The deny list is an explicit table of the IANA special-purpose address registries (IPv4 and IPv6,
as of 2025) plus multicast, site-local and every IPv6 address outside global unicast. It does not
use `ipaddress`'s is_private/is_global flags on purpose: those changed between Python patch
releases (3.11.7 still calls fec0::/10 and 192.0.0.0/24 global), and a security boundary must not
move with the interpreter. Entries marked `named_only` (link-local, where cloud metadata lives, and
the metadata addresses themselves) are reached only when --allow-private-hosts names them exactly;
a wide range such as 0.0.0.0/0 never covers them.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from videoproc.common.errors import OptionsError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class Special:
    """One deny-list entry: `kind` is the short word in messages, `name` the registry's name."""

    network: IPNetwork
    kind: str
    name: str
    named_only: bool = False


def _entry(cidr: str, kind: str, name: str, *, named_only: bool = False) -> Special:
    return Special(network=ipaddress.ip_network(cidr), kind=kind, name=name, named_only=named_only)


# Most specific first: the first entry that holds an address names it in the message. IPv6
# addresses that embed an IPv4 one (mapped, 6to4, NAT64) are checked as that IPv4 address.
SPECIAL_PURPOSE: tuple[Special, ...] = (
    # IPv4: RFC 6890 registry
    _entry("0.0.0.0/32", "unspecified", "this host on this network, RFC 1122"),
    _entry("0.0.0.0/8", "reserved", "this network, RFC 791"),
    _entry("10.0.0.0/8", "private", "private-use, RFC 1918"),
    _entry("100.100.100.200/32", "metadata", "Alibaba Cloud metadata service", named_only=True),
    _entry("100.64.0.0/10", "shared", "shared address space (carrier-grade NAT), RFC 6598"),
    _entry("127.0.0.0/8", "loopback", "loopback, RFC 1122"),
    _entry("169.254.169.254/32", "link-local", "cloud metadata service (AWS, GCP, Azure...)", named_only=True),
    _entry("169.254.0.0/16", "link-local", "link local, RFC 3927", named_only=True),
    _entry("172.16.0.0/12", "private", "private-use, RFC 1918"),
    _entry("192.0.0.0/24", "special-purpose", "IETF protocol assignments, RFC 6890"),
    _entry("192.0.2.0/24", "documentation", "TEST-NET-1, RFC 5737"),
    _entry("192.31.196.0/24", "special-purpose", "AS112-v4, RFC 7535"),
    _entry("192.52.193.0/24", "special-purpose", "AMT, RFC 7450"),
    _entry("192.88.99.0/24", "reserved", "deprecated 6to4 relay anycast, RFC 7526"),
    _entry("192.168.0.0/16", "private", "private-use, RFC 1918"),
    _entry("192.175.48.0/24", "special-purpose", "direct delegation AS112 service, RFC 7534"),
    _entry("198.18.0.0/15", "benchmarking", "benchmarking, RFC 2544"),
    _entry("198.51.100.0/24", "documentation", "TEST-NET-2, RFC 5737"),
    _entry("203.0.113.0/24", "documentation", "TEST-NET-3, RFC 5737"),
    _entry("224.0.0.0/4", "multicast", "multicast, RFC 5771"),
    _entry("255.255.255.255/32", "broadcast", "limited broadcast, RFC 8190"),
    _entry("240.0.0.0/4", "reserved", "reserved, RFC 1112"),
    # IPv6: RFC 6890 registry
    _entry("::/128", "unspecified", "unspecified address, RFC 4291"),
    _entry("::1/128", "loopback", "loopback address, RFC 4291"),
    _entry("64:ff9b:1::/48", "private", "local-use IPv4/IPv6 translation, RFC 8215"),
    _entry("100::/64", "reserved", "discard-only address block, RFC 6666"),
    _entry("100:0:0:1::/64", "reserved", "dummy IPv6 prefix, RFC 9780"),
    _entry("2001::/32", "special-purpose", "TEREDO, RFC 4380"),
    _entry("2001::/23", "special-purpose", "IETF protocol assignments, RFC 2928"),
    _entry("2001:db8::/32", "documentation", "documentation, RFC 3849"),
    _entry("2620:4f:8000::/48", "special-purpose", "direct delegation AS112 service, RFC 7534"),
    _entry("3fff::/20", "documentation", "documentation, RFC 9637"),
    _entry("5f00::/16", "special-purpose", "segment routing SIDs, RFC 9602"),
    _entry("fd00:ec2::254/128", "metadata", "AWS instance metadata service (IPv6)", named_only=True),
    _entry("fc00::/7", "private", "unique-local, RFC 4193"),
    _entry("fe80::/10", "link-local", "link-local unicast, RFC 4291", named_only=True),
    _entry("fec0::/10", "private", "site-local (deprecated), RFC 3879"),
    _entry("ff00::/8", "multicast", "multicast, RFC 4291"),
    # IPv6 outside global unicast 2000::/3 is unassigned or reserved by the IETF (IPv4-compatible
    # ::a.b.c.d included); 2002::/16 and 64:ff9b::/96 are checked as the IPv4 address they embed.
    _entry("::/3", "reserved", "reserved by the IETF (outside global unicast 2000::/3)"),
    _entry("4000::/2", "reserved", "reserved by the IETF (outside global unicast 2000::/3)"),
    _entry("8000::/1", "reserved", "reserved by the IETF (outside global unicast 2000::/3)"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def special_purpose_entry(ip: IPAddress) -> Special | None:
    """The deny-list entry `ip` (or the IPv4 address it embeds) falls in, None when public."""
    ip = embedded_ipv4(ip) or ip
    return next((entry for entry in SPECIAL_PURPOSE
                 if ip.version == entry.network.version and ip in entry.network), None)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches: ::ffff:a.b.c.d (mapped), 2002:AABB:CCDD:: (6to4) and
    64:ff9b::a.b.c.d (NAT64). Teredo (2001::/32) is refused whole by the table instead."""
    if ip.version == 4:
        return None
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True, kw_only=True)
class PrivateHostRule:
    """One --allow-private-hosts entry: a network (CIDR or single address) or a host name, with
    an optional port; `text` is the entry as given."""

    text: str
    network: IPNetwork | None = None
    host: str | None = None
    port: int | None = None

    def allows(self, ip: IPAddress, *, host: str, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.host is not None:
            return host.lower() == self.host  # a name the user wrote out: trusted whatever it resolves to
        ip = embedded_ipv4(ip) or ip
        if self.network is None or ip.version != self.network.version or ip not in self.network:
            return False
        entry = special_purpose_entry(ip)
        return entry is None or not entry.named_only or self.network.subnet_of(entry.network)


_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


@functools.cache
def parse_private_hosts(entries: tuple[str, ...]) -> tuple[PrivateHostRule, ...]:
    """Parse --allow-private-hosts entries; raise OptionsError naming a bad one and the fix."""
    return tuple(_parse_rule(text.strip()) for text in entries if text.strip())


def _parse_rule(text: str) -> PrivateHostRule:
    address, port = _split_port(text)
    try:
        network = ipaddress.ip_network(address, strict=False)
    except ValueError:
        network = None
    if network is not None and (port is None or network.num_addresses == 1):
        return PrivateHostRule(text=text, network=network, port=port)
    if network is None and "/" not in address and _HOST.fullmatch(address.lower()):
        return PrivateHostRule(text=text, host=address.lower().rstrip("."), port=port)
    raise OptionsError(
        f"allow_private_hosts entry {text!r} is not a CIDR (10.0.0.0/8), an address with an optional "
        "port (10.1.2.3:8080, [fd00::5]:8080) or a HOST[:PORT] name; e.g. --allow-private-hosts "
        "10.1.2.3:8080,videos.internal"
    )


def _split_port(text: str) -> tuple[str, int | None]:
    """'[::1]:80' -> ('::1', 80); 'host:80' / '10.0.0.1:80' -> (..., 80); else (text, None)."""
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        return address, _port(rest[1:], text) if rest.startswith(":") else None
    head, sep, tail = text.rpartition(":")
    if sep and ":" not in head:
        return head, _port(tail, text)
    return text, None


def _port(value: str, text: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise OptionsError(
            f"allow_private_hosts entry {text!r} has port {value!r}; a port is a number from 1 to 65535"
        )
    return int(value)
