"""The write-time check as the API answers it: a refused URL is a 422 with the policy's code."""

from __future__ import annotations

from collections.abc import Iterable

from execution_service.errors import Unprocessable
from execution_service.outbound.policy import OutboundPolicy, UrlRefused, check_url


async def check_base_url(
    url: str | None, policy: OutboundPolicy, venue_hosts: Iterable[str] | None = None
) -> None:
    if url is None:
        return
    try:
        await check_url(url, policy, venue_hosts)
    except UrlRefused as e:
        raise Unprocessable(f"api_base_url refused: {e.reason}", code=e.code) from None
