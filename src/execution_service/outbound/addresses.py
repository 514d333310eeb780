"""Which IP addresses a tenant's URL may reach: public unicast ones only.

The rule is `is_global and not multicast` after unwrapping every IPv6 form that carries an IPv4
address (IPv4-mapped, 6to4, NAT64, Teredo), so loopback, private, link-local, CGNAT
(100.64.0.0/10, where 100.100.100.200 is a cloud metadata address), unique-local, 192.0.0.0/24,
benchmarking, documentation and reserved ranges are all refused, however they are spelled.
"""

from __future__ import annotations

import ipaddress
import socket

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Refused whatever the Python version's `is_global` says of them (it has changed over releases).
RESERVED = tuple(
    ipaddress.ip_network(n)
    for n in ("0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def literal(host: str) -> IpAddress | None:
    """The address a host spells, in any form a resolver accepts (`127.1`, `2130706433`,
    `0x7f000001`, `[::1]`), or None for a name."""
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        # inet_aton takes the legacy spellings getaddrinfo also takes: decimal, hex, octal, short.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def embedded(address: IpAddress) -> IpAddress:
    """The IPv4 address an IPv6 address wraps, if it wraps one."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64 or address in NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address: IpAddress) -> str | None:
    """Why a connection to `address` is refused, or None for a public unicast address."""
    inner = embedded(address)
    for candidate in (inner, address):
        if candidate.is_loopback:
            return "a loopback address"
        if candidate.is_link_local:
            return "a link-local address"
        if candidate.is_multicast:
            return "a multicast address"
        if not candidate.is_global or any(candidate in net for net in RESERVED):
            return "a private or reserved address"
    return None
