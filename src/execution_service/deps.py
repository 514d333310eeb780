"""FastAPI dependencies over the application context (one per process, on `app.state`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.context import AppContext


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a hop that
    # cost every request about 0.4 ms (profile of POST /signals) for one attribute read.
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_session(ctx: ContextDep) -> AsyncIterator[AsyncSession]:
    async with ctx.session_factory() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
