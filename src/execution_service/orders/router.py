"""Orders over HTTP: the execution logs (`/logs`), and the two position routes that place or
amend orders (`/positions/{id}/close`, `PATCH /positions/{id}`), documented with the positions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from execution_service.deps import ContextDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.enums import OrderStatus, Purpose
from execution_service.orders import killswitch, service
from execution_service.orders.schemas import (
    CloseAll,
    CloseAllResult,
    ExecutionLogDetail,
    ExecutionLogRead,
    PositionCloseResult,
)
from execution_service.positions import service as positions
from execution_service.positions.schemas import PositionClose, PositionRead, PositionUpdate
from execution_service.schemas import Instant, Page, problems

router = APIRouter(prefix="/logs", tags=["logs"])
position_router = APIRouter(prefix="/positions", tags=["positions"])
close_all_router = APIRouter(tags=["kill switch"])

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
    purpose: Annotated[
        Purpose | None,
        Query(description="entry, exit, or protect (a position's SL/TP resting at the venue)"),
    ] = None,
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
        purpose=purpose.value if purpose else None,
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


def _result(out: killswitch.ClosedOut) -> CloseAllResult:
    return CloseAllResult(
        connections=out.connections,
        cancelled=len(out.cancelled),
        closing=len(out.exits),
        failed=out.failed,
        executions=[ExecutionLogRead.model_validate(e) for e in [*out.cancelled, *out.exits]],
    )


@close_all_router.post(
    "/connections/{connection_id}/close-all",
    response_model=CloseAllResult,
    responses=problems(404),
)
async def close_connection(
    connection_id: RowId, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> CloseAllResult:
    """Cancel the account's resting orders and close every position it holds, now."""
    return _result(await killswitch.close_connection(session, ctx, principal, connection_id))


@close_all_router.post("/close-all", response_model=CloseAllResult, responses=problems(403, 422))
async def close_everything(
    session: SessionDep,
    ctx: ContextDep,
    principal: PrincipalDep,
    body: Annotated[CloseAll | None, Body()] = None,
) -> CloseAllResult:
    """The same for every account the caller owns (an admin: one `user_id`, or every owner)."""
    wanted = body or CloseAll()
    user_id = killswitch.owner_to_close(principal, wanted.user_id, wanted.every_owner)
    return _result(await killswitch.close_everything(session, ctx, principal, user_id))
