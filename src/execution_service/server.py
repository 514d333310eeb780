"""The HTTP server's own limits: time to send a request's headers, and its body.

uvicorn times out idle keep-alive connections but nothing else: a client that opens a connection
and sends its headers a byte a minute (or never) holds a socket forever, and a few thousand of
them exhaust the process's file descriptors (issue #15). This protocol closes a connection whose
request headers are not complete `header_timeout` seconds after it opened (or after its previous
response), and one whose body has not arrived `body_timeout` seconds after its headers. The
number of connections is bounded by uvicorn's `limit_concurrency` (503 beyond it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class BoundedHttpTools(HttpToolsProtocol):
    header_timeout = 10.0  # not money
    body_timeout = 30.0  # not money

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers_due: asyncio.TimerHandle | None = None
        self._body_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_headers()

    def on_headers_complete(self) -> None:
        self._cancel()
        super().on_headers_complete()
        self._body_due = self.loop.call_later(self.body_timeout, self._too_slow)

    def on_message_complete(self) -> None:
        self._cancel()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _arm_headers(self) -> None:
        if self._headers_due is None:
            self._headers_due = self.loop.call_later(self.header_timeout, self._too_slow)

    def _cancel(self) -> None:
        for timer in (self._headers_due, self._body_due):
            if timer is not None:
                timer.cancel()
        self._headers_due = self._body_due = None

    def _too_slow(self) -> None:
        self._cancel()
        if self.cycle is not None and self.cycle.response_complete is False:
            if not self.cycle.more_body:
                return  # the request is in; the app is answering: not the client's delay
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(header_timeout: float, body_timeout: float) -> type[BoundedHttpTools]:
    return type(
        "BoundedHttpTools",
        (BoundedHttpTools,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
