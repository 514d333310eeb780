"""An httpx transport that connects only to addresses the outbound policy allows.

Each request's host is resolved and checked (`policy.resolve`) and the connection is made to the
checked address itself, with the original name kept in the Host header and for TLS (SNI and
certificate checks): nothing resolves the name a second time, so it cannot be rebound between
the check and the connection. Redirects are never followed by the clients built here.
"""

from __future__ import annotations

from typing import Any

import httpx

from execution_service.outbound.policy import OutboundPolicy, UrlRefused, resolve


class PinnedTransport(httpx.AsyncBaseTransport):
    def __init__(self, policy: OutboundPolicy, **transport: Any) -> None:
        self._policy = policy
        self._inner = httpx.AsyncHTTPTransport(**transport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.ConnectError("only http and https URLs are allowed", request=request)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await resolve(url.host, port, self._policy)
        except UrlRefused as e:
            raise httpx.ConnectError(f"refused by the outbound policy: {e.reason}") from e
        address = addresses[0]
        request.url = url.copy_with(host=address)
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": url.host}
        try:
            return await self._inner.handle_async_request(request)
        finally:
            request.url = url

    async def aclose(self) -> None:
        await self._inner.aclose()


def pinned_client(policy: OutboundPolicy, **client: Any) -> httpx.AsyncClient:
    """An httpx client that reaches only what `policy` allows and never follows a redirect."""
    return httpx.AsyncClient(transport=PinnedTransport(policy), follow_redirects=False, **client)
