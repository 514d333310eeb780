"""Helpers for the outbound policy's tests: the strict policy switched on for one test (the
suite allows loopback, where its fakes listen), a fake DNS, and a server that only redirects."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from execution_service.context import AppContext
from execution_service.outbound import policy
from execution_service.settings import Settings


@contextmanager
def strict(ctx: AppContext, settings: Settings) -> Iterator[None]:
    """The production rule (public addresses only) for the API, the workers and the clients."""
    tight = settings.model_copy(update={"outbound_allow_private": False})
    registry = ctx.adapters
    before = registry._settings
    ctx.settings, registry._settings = tight, tight
    try:
        yield
    finally:
        ctx.settings, registry._settings = settings, before


@dataclass
class Dns:
    """Names this test resolves, each to the addresses it is given now (rebinding = set again)."""

    names: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Dns:
    table = Dns()
    real = policy.lookup

    async def lookup(host: str, port: int) -> list[str]:
        if host in table.names:
            return table.names[host]
        return await real(host, port)

    monkeypatch.setattr(policy, "lookup", lookup)
    return table


@dataclass
class Redirector:
    """Answers every request with a redirect to its own /landed, and records what lands."""

    landed: list[str] = field(default_factory=list)
    base_url: str = ""


@asynccontextmanager
async def redirector() -> AsyncIterator[Redirector]:
    state = Redirector()

    async def handle(request: Request) -> Response:
        if request.url.path == "/landed":
            state.landed.append(request.method)
            return Response("{}", media_type="application/json")
        return RedirectResponse(f"{state.base_url}/landed", status_code=307)

    methods = ["GET", "POST", "PUT", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", handle, methods=methods)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    state.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield state
    finally:
        server.should_exit = True
        await task
        sock.close()
