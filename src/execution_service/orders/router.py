"""Orders over HTTP: the execution logs (`/logs`), and the two position routes that place or
amend orders (`/positions/{id}/close`, `PATCH /positions/{id}`), documented with the positions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from execution_service.deps import ContextDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.enums import OrderStatus
from execution_service.orders import service
from execution_service.orders.schemas import (
    ExecutionLogDetail,
    ExecutionLogRead,
    PositionCloseResult,
)
from execution_service.positions import service as positions
from execution_service.positions.schemas import PositionClose, PositionRead, PositionUpdate
from execution_service.schemas import Instant, Page, problems

router = APIRouter(prefix="/logs", tags=["logs"])
position_router = APIRouter(prefix="/positions", tags=["positions"])

IdFilter = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


@router.get("", response_model=Page[ExecutionLogRead])
async def list_logs(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    connection_id: IdFilter = None,
    status: OrderStatus | None = None,
    signal_id: IdFilter = None,
    symbol: Annotated[str | None, Query(max_length=64)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
) -> Page[ExecutionLogRead]:
    rows, total = await service.list_logs(
        session,
        principal,
        connection_id=connection_id,
        status=status.value if status else None,
        signal_id=signal_id,
        symbol=symbol,
        since=since,
        until=until,
        limit=page.limit,
        offset=page.offset,
    )
    items = [ExecutionLogRead.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{log_id}", response_model=ExecutionLogDetail, responses=problems(404))
async def get_log(
    log_id: RowId, session: SessionDep, principal: PrincipalDep
) -> ExecutionLogDetail:
    return ExecutionLogDetail.model_validate(await service.get_log(session, principal, log_id))


@router.post("/{log_id}/cancel", response_model=ExecutionLogRead, responses=problems(404, 409, 502))
async def cancel_log(
    log_id: RowId, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> ExecutionLogRead:
    return ExecutionLogRead.model_validate(await service.cancel(session, ctx, principal, log_id))


@position_router.patch(
    "/{position_id}", response_model=PositionRead, responses=problems(404, 409, 413, 502)
)
async def update_position(
    position_id: RowId,
    body: PositionUpdate,
    session: SessionDep,
    ctx: ContextDep,
    principal: PrincipalDep,
) -> PositionRead:
    position = await service.amend_position(session, ctx, principal, position_id, body.changes())
    return PositionRead.model_validate(position)


@position_router.post(
    "/{position_id}/close",
    response_model=PositionCloseResult,
    responses=problems(404, 409, 413, 502),
)
async def close_position(
    position_id: RowId,
    session: SessionDep,
    ctx: ContextDep,
    principal: PrincipalDep,
    body: Annotated[PositionClose | None, Body()] = None,
) -> PositionCloseResult:
    quantity = body.quantity if body else None
    exit_log = await service.close_position(session, ctx, principal, position_id, quantity)
    position = await positions.get_position(session, principal, position_id)
    await session.refresh(position)
    return PositionCloseResult(
        position=PositionRead.model_validate(position),
        execution=ExecutionLogRead.model_validate(exit_log),
    )
