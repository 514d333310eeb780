from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from execution_service.db import read
from execution_service.deps import ContextDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.enums import PositionStatus
from execution_service.logs.schemas import ExecutionLogRead
from execution_service.positions import service
from execution_service.positions.schemas import (
    PositionClose,
    PositionRead,
    PositionUpdate,
)
from execution_service.schemas import Model, Page, problems

router = APIRouter(prefix="/positions", tags=["positions"])


class PositionCloseResult(Model):
    position: PositionRead
    execution: ExecutionLogRead


@router.get("", response_model=Page[PositionRead], response_class=JSONResponse)
async def list_positions(
    ctx: ContextDep,
    principal: PrincipalDep,
    page: PageDep,
    status: PositionStatus | None = None,
    connection_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    symbol: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    body = await read(
        ctx.reader,
        lambda conn: service.list_positions(
            conn,
            principal,
            status=status.value if status else None,
            connection_id=connection_id,
            symbol=symbol,
            limit=page.limit,
            offset=page.offset,
        ),
    )
    return Response(body, media_type="application/json")


@router.get("/{position_id}", response_model=PositionRead, responses=problems(404))
async def get_position(
    position_id: RowId, session: SessionDep, principal: PrincipalDep
) -> PositionRead:
    return PositionRead.model_validate(await service.get_position(session, principal, position_id))


@router.patch("/{position_id}", response_model=PositionRead, responses=problems(404, 409, 413, 502))
async def update_position(
    position_id: RowId,
    body: PositionUpdate,
    session: SessionDep,
    ctx: ContextDep,
    principal: PrincipalDep,
) -> PositionRead:
    position = await service.update_position(session, ctx, principal, position_id, body.changes())
    return PositionRead.model_validate(position)


@router.post(
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
    position = await service.get_position(session, principal, position_id)
    await session.refresh(position)
    return PositionCloseResult(
        position=PositionRead.model_validate(position),
        execution=ExecutionLogRead.model_validate(exit_log),
    )
