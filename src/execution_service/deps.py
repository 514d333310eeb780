"""Every FastAPI dependency of the routers: the process context, a session, the caller's
principal, a page and a row id. The one module below the routers that imports fastapi, so
services and repositories never do (import-linter holds that)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.api_keys.keys import cached, lookup_once
from execution_service.context import AppContext
from execution_service.enums import Role
from execution_service.errors import Forbidden, TooManyRequests, Unauthorized
from execution_service.principal import Principal
from execution_service.schemas import PageParams


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


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or `X-API-Key: <key>`")


async def get_principal(
    request: Request,
    ctx: ContextDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> Principal:
    limiter = ctx.auth_limiter
    address = request.client.host if request.client else "unknown"
    key = bearer.credentials if bearer is not None else header
    # Failures count per (address, key prefix): behind a shared proxy one client's bad keys
    # do not lock out the others' good ones (see auth_scopes).
    principal = cached(key) if key else None
    if principal is not None:  # a key validated moments ago is not throttled by others' errors
        request.state.principal = principal
        return principal
    scopes = auth_scopes(address, key)
    wait = max((w for w in map(limiter.retry_after, scopes) if w is not None), default=None)
    if not key:
        if wait is not None:
            raise TooManyRequests("too many failed authentications", retry_after=wait)
        limiter.failed(scopes[0])
        raise Unauthorized("an API key is required: Authorization: Bearer <key> or X-API-Key")
    principal = await lookup_once(ctx, key)
    if principal is None:
        if wait is not None:  # a blocked scope: refused without counting, and never a valid key
            raise TooManyRequests("too many failed authentications for this key", retry_after=wait)
        for scope, weight in zip(scopes, (1.0, 0.1, 0.1), strict=False):
            limiter.failed(scope, weight=weight)
        raise Unauthorized("the API key is not valid")
    request.state.principal = principal
    return principal


def auth_scopes(address: str, key: str | None) -> list[str]:
    """Where a failed authentication counts: (address, prefix) in full; the prefix from any
    address and the address with any prefix at a tenth each (guessing one key from many
    addresses, or many keys from one, is slowed too). A blocked scope refuses invalid keys only:
    a valid key is always let in."""
    parts = (key or "").split("_", 2)
    prefix = parts[1][:16] if len(parts) == 3 and parts[0] == "exs" else ""
    if not prefix:
        return [f"{address}|", f"{address}|*"]
    return [f"{address}|{prefix}", f"*|{prefix}", f"{address}|*"]


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if principal.role is not Role.admin:
        raise Forbidden("only an admin key may do this")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


async def _page_params(  # async: no threadpool hop per request
    limit: Annotated[int, Query(ge=1, le=500, description="at most 500")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(_page_params)]

RowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="row id")]
