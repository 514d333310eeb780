"""The outbound-URL policy: checked when a URL is written, and again at every connection.

The rule, in order:
1. The scheme is http or https, and the URL names a host.
2. A host the operator listed in `EXEC_OUTBOUND_ALLOWED_HOSTS` is allowed, wherever it resolves
   (a self-hosted MetaTrader gateway on a private network is the usual case).
3. With `venue_hosts_only` (the default in production), a ccxt URL must name one of the hosts
   ccxt itself knows for that exchange, or a listed host: a tenant cannot point a venue client
   anywhere else.
4. Every address the host is or resolves to must be public (see `addresses`), unless
   `EXEC_OUTBOUND_ALLOW_PRIVATE` is on; it is for tests and development and is refused in
   production.
At connect time the host is resolved again and only the addresses that pass are connected to
(see `http.PinnedTransport` and `exchanges/ccxt/network.py`): a name rebound to 127.0.0.1 after
the write-time check reaches nothing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from execution_service.outbound.addresses import literal, refusal


class UrlRefused(OSError):
    """A URL or address the policy refuses. An OSError, so HTTP clients treat it as a failed
    connection (nothing is sent) and report it as one."""

    def __init__(self, reason: str, code: str = "url_refused") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    venue_hosts_only: bool = False

    def listed(self, host: str, port: int | None = None) -> bool:
        host = host.lower().strip("[]").rstrip(".")
        return host in self.allowed_hosts or (
            port is not None and f"{host}:{port}" in self.allowed_hosts
        )


# What an adapter built outside the service applies (a library caller, a test's own client):
# the service's one construction path, the adapter registry, always passes the settings' policy.
OPEN = OutboundPolicy(allow_private=True)


def split(url: str) -> tuple[str, int]:
    """The host and port a URL connects to; raises UrlRefused if it has none or no http(s)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("the URL cannot be parsed") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("only http and https URLs are allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("the URL names no host")
    return host, port or (443 if parts.scheme == "https" else 80)


async def check_url(
    url: str, policy: OutboundPolicy, venue_hosts: Iterable[str] | None = None
) -> None:
    """The write-time check; raises UrlRefused. `venue_hosts` are the hosts the venue's own
    library knows (ccxt's `urls`), used when the policy keeps venue clients on them."""
    host, port = split(url)
    if policy.listed(host, port):
        return
    if policy.venue_hosts_only and venue_hosts is not None:
        known = {h.lower() for h in venue_hosts}
        if host.lower() not in known:
            raise UrlRefused(f"{host} is not a host of this venue (EXEC_OUTBOUND_ALLOWED_HOSTS)")
    try:
        await resolve(host, port, policy)
    except UrlRefused as e:
        # A name that does not resolve now is not refused: it is checked (and pinned) again
        # at every connection, and nothing is sent until it resolves to an allowed address.
        if e.code != "url_unresolvable":
            raise


async def lookup(host: str, port: int) -> list[str]:
    """The addresses of a name (the one place the policy asks DNS; tests replace it)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve(host: str, port: int, policy: OutboundPolicy) -> list[str]:
    """The addresses `host` may be connected to: resolved now and each one checked. Raises
    UrlRefused when any is refused (a name with one private address among public ones is a
    rebinding set-up, not a mistake), or when the name does not resolve."""
    address = literal(host)
    if address is not None:
        addresses = [address]
    elif host.lower() == "localhost" or host.lower().endswith(".localhost"):
        addresses = [literal("127.0.0.1")]  # type: ignore[list-item]
    else:
        try:
            found = await lookup(host, port)
        except OSError:
            raise UrlRefused(f"{host} does not resolve", code="url_unresolvable") from None
        addresses = [a for a in map(literal, found) if a is not None]
        if not addresses:
            raise UrlRefused(f"{host} does not resolve", code="url_unresolvable")
    if not (policy.allow_private or policy.listed(host, port)):
        for a in addresses:
            why = refusal(a)
            if why is not None:
                shown = host if str(a) == host else f"{host} ({a})"
                raise UrlRefused(f"{shown} is {why}")
    return list(dict.fromkeys(str(a) for a in addresses))
