"""A Starlette app served by uvicorn on a loopback port inside the test's event loop: what both
fake venues (Binance, the MetaTrader gateway) stand on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn


class _QuietServer(uvicorn.Server):
    """uvicorn's serve() grabs SIGINT/SIGTERM; inside a test process that must not happen."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LoopbackServer:
    def __init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, app: Any, host: str, port: int, **config: Any) -> int:
        """Serve `app` on host:port (0: a free port) and return the port. Bound here, so a
        server stopped to play "connection refused" can come back on the same port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it: without, uvicorn's separate header and body writes wait
        # out the client's delayed ACK, 40 ms a request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        server = _QuietServer(
            uvicorn.Config(app, lifespan="off", access_log=False, log_config=None, **config)
        )
        self._server, self._task = server, asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._task.done():
                self._task.result()  # startup failed: raise its error
                raise RuntimeError("the fake server did not start")
            await asyncio.sleep(0.005)
        port: int = sock.getsockname()[1]
        return port

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is not None and task is not None:
            server.should_exit = True
            await task
