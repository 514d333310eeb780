"""Reading positions. Closing one and amending its stops are orders: those two routes live in
`orders/router.py` (the book never imports the orders above it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from execution_service.db import read
from execution_service.deps import ContextDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.enums import PositionStatus
from execution_service.positions import service
from execution_service.positions.schemas import PositionRead
from execution_service.schemas import Page, problems

router = APIRouter(prefix="/positions", tags=["positions"])


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
