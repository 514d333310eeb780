"""Where a webhook may send: not, by default in production, into the service's own network.

A webhook URL is chosen by an API user, and the worker POSTs to it from inside the deployment: left
unchecked, `http://169.254.169.254/…` or `http://10.0.0.5:5432` would make the service probe its
own network for them (SSRF). The host is checked when the webhook is registered (an address, or a
name that resolves now) and again before every delivery (a name may resolve elsewhere later).
A name re-resolved by the HTTP client between the check and the connection could still differ:
the check narrows that window to milliseconds, a network policy on the worker closes it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def refusal(address: IpAddress) -> str | None:
    """Why a delivery to this address is refused, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private or address.is_reserved or address.is_unspecified:
        return "a private or reserved address"
    if address.is_multicast:
        return "a multicast address"
    return None


async def check(url: str, *, allow_private: bool, resolve: bool = True) -> str | None:
    """Why `url`'s host is refused, or None. A name that does not resolve is not refused here:
    the delivery fails (and is retried) like any unreachable receiver."""
    if allow_private:
        return None
    host = (urlsplit(url).hostname or "").rstrip(".")
    try:
        addresses: list[IpAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return f"{host} is a loopback name"
        if not resolve:
            return None
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
        except OSError:
            return None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        why = refusal(address)
        if why is not None:
            return f"{host} is {why}" if str(address) == host else f"{host} resolves to {why}"
    return None
