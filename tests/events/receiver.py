"""A webhook receiver: a real HTTP server on loopback that records every request and answers
`/fail/<n>` with 500 for its first n requests (then 200), `/down` always with 503."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    requests: list[Received] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    base_url: str = ""

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        self.requests.append(Received(path, dict(request.headers), await request.body()))
        self.seen[path] += 1
        if path == "/down":
            return Response(status_code=503)
        if path.startswith("/fail/") and self.seen[path] <= int(path.rsplit("/", 1)[1]):
            return Response("not yet", status_code=500)
        return Response(status_code=204)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def __aenter__(self) -> Receiver:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)
        host, port = self._sock.getsockname()
        self.base_url = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        await self._task
