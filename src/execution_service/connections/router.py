from __future__ import annotations

from fastapi import APIRouter, Response, status

from execution_service.connections import service
from execution_service.connections.schemas import (
    BalanceRead,
    ConnectionCreate,
    ConnectionRead,
    ConnectionTestResult,
    ConnectionUpdate,
)
from execution_service.deps import ContextDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.schemas import Page, problems

router = APIRouter(prefix="/connections", tags=["connections"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ConnectionRead,
    responses=problems(403, 413),
)
async def create_connection(
    body: ConnectionCreate, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> ConnectionRead:
    conn = await service.create_connection(session, ctx, principal, body)
    return ConnectionRead.model_validate(conn)


@router.get("", response_model=Page[ConnectionRead])
async def list_connections(
    session: SessionDep, principal: PrincipalDep, page: PageDep
) -> Page[ConnectionRead]:
    rows, total = await service.list_connections(session, principal, page.limit, page.offset)
    items = [ConnectionRead.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{connection_id}", response_model=ConnectionRead, responses=problems(404))
async def get_connection(
    connection_id: RowId, session: SessionDep, principal: PrincipalDep
) -> ConnectionRead:
    return ConnectionRead.model_validate(
        await service.get_connection(session, principal, connection_id)
    )


@router.patch("/{connection_id}", response_model=ConnectionRead, responses=problems(404, 413))
async def update_connection(
    connection_id: RowId,
    body: ConnectionUpdate,
    session: SessionDep,
    ctx: ContextDep,
    principal: PrincipalDep,
) -> ConnectionRead:
    conn = await service.update_connection(session, ctx, principal, connection_id, body)
    return ConnectionRead.model_validate(conn)


@router.delete(
    "/{connection_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409)
)
async def delete_connection(
    connection_id: RowId, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> Response:
    await service.delete_connection(session, ctx, principal, connection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{connection_id}/test", response_model=ConnectionTestResult, responses=problems(404))
async def test_connection(
    connection_id: RowId, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> ConnectionTestResult:
    result = await service.test_connection(session, ctx, principal, connection_id)
    return ConnectionTestResult(ok=result.ok, latency_ms=result.latency_ms, error=result.error)


@router.post(
    "/{connection_id}/activate", response_model=ConnectionRead, responses=problems(404, 409, 503)
)
async def activate_connection(
    connection_id: RowId, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> ConnectionRead:
    return ConnectionRead.model_validate(
        await service.activate(session, ctx, principal, connection_id)
    )


@router.post("/{connection_id}/deactivate", response_model=ConnectionRead, responses=problems(404))
async def deactivate_connection(
    connection_id: RowId, session: SessionDep, principal: PrincipalDep
) -> ConnectionRead:
    return ConnectionRead.model_validate(
        await service.deactivate(session, principal, connection_id)
    )


@router.get(
    "/{connection_id}/balance", response_model=dict[str, BalanceRead], responses=problems(404, 502)
)
async def connection_balance(
    connection_id: RowId, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> dict[str, BalanceRead]:
    balances = await service.balance(session, ctx, principal, connection_id)
    return {
        currency: BalanceRead(free=b.free, used=b.used, total=b.total)
        for currency, b in balances.items()
    }


@router.post(
    "/{connection_id}/clear-stop-out", response_model=ConnectionRead, responses=problems(404, 409)
)
async def clear_stop_out(
    connection_id: RowId, session: SessionDep, principal: PrincipalDep
) -> ConnectionRead:
    """Clear a drawdown stop-out: the account takes new trades again."""
    conn = await service.clear_stop_out(session, principal, connection_id)
    return ConnectionRead.model_validate(conn)
