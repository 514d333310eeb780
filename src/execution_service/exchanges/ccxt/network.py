"""ccxt's HTTP session under the outbound policy: checked addresses only, no redirects.

ccxt opens its own aiohttp session lazily (`open()`); ours is put in its place first, with
- a resolver that answers only with addresses the policy allows (`outbound.policy.resolve`), so
  a venue host rebound to 127.0.0.1 after the connection was written is never reached;
- a request hook that checks hosts given as IP literals (aiohttp skips the resolver for those);
- a redirect hook that refuses every redirect: a venue answers, it does not send us elsewhere.
ccxt still owns and closes the session.
"""

from __future__ import annotations

import functools
import socket
import ssl
import types
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from execution_service.outbound.addresses import literal
from execution_service.outbound.policy import OutboundPolicy, UrlRefused, resolve


class RedirectRefused(aiohttp.ClientConnectionError):
    """A venue answered with a redirect; it is not followed."""


class AddressBlocked(aiohttp.ClientConnectionError):
    """A host given as an IP literal that the policy refuses (its cause is the UrlRefused)."""


class PinnedResolver(AbstractResolver):
    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve(host, port, self._policy)
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        return None


def _hooks(policy: OutboundPolicy) -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()

    async def on_start(_s: Any, _c: Any, params: aiohttp.TraceRequestStartParams) -> None:
        host = params.url.host or ""
        if literal(host) is not None:  # names go through PinnedResolver
            try:
                await resolve(host, params.url.port or 0, policy)
            except UrlRefused as e:
                raise AddressBlocked(e.reason) from e

    async def on_redirect(_s: Any, _c: Any, params: aiohttp.TraceRequestRedirectParams) -> None:
        raise RedirectRefused(f"redirect refused (HTTP {params.response.status})")

    trace.on_request_start.append(on_start)
    trace.on_request_redirect.append(on_redirect)
    return trace


# An idle pooled connection is dropped after this long, before the server drops it: servers close
# idle keep-alive connections after as little as 5 s (uvicorn, Node), and an order written on a
# connection the server is closing at that moment is lost unsent, its outcome unknown until the
# tracker reconciles it (aiohttp's own default is 15 s). Past it, a request pays a new handshake.
KEEPALIVE_SECONDS = 4.0  # not money


def pin(ex: Any, policy: OutboundPolicy) -> None:
    """Make ccxt client `ex` open its session under `policy` (before its first request)."""
    opened = ex.open

    def open_pinned(self: Any, lazy: bool = False) -> None:
        if self.ssl_context is None:  # else ccxt builds its own, loading the CA bundle again
            self.ssl_context = _ssl(self)
        if self.own_session and self.session is None:
            connector = aiohttp.TCPConnector(
                resolver=PinnedResolver(policy),
                enable_cleanup_closed=True,
                ssl=self.ssl_context,
                keepalive_timeout=KEEPALIVE_SECONDS,
            )
            self.tcp_connector = connector
            self.session = aiohttp.ClientSession(
                connector=connector, trace_configs=[_hooks(policy)], trust_env=False
            )
        opened(lazy)

    ex.open = types.MethodType(open_pinned, ex)


def _ssl(ex: Any) -> Any:
    if not ex.verify:
        return False
    return _context(ex.cafile)


@functools.cache
def _context(cafile: str | None) -> ssl.SSLContext:
    """One TLS context per CA bundle for every client: building one loads the bundle (~15 ms of
    CPU), and a fan-out to 1,000 new accounts built 2,000 of them, 30 s of CPU before its
    orders could go. A context is only read once built, so sharing it is safe."""
    return ssl.create_default_context(cafile=cafile)


__all__ = ["AddressBlocked", "PinnedResolver", "RedirectRefused", "pin"]
