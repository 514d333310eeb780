from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from execution_service.deps import ContextDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.market_data import service
from execution_service.market_data.schemas import (
    DataConnectionCreate,
    DataConnectionRead,
    DataConnectionUpdate,
    IngestResult,
    LatestPrice,
    MarketDataIngest,
)
from execution_service.schemas import Page, problems

router = APIRouter(prefix="/data-connections", tags=["data-connections"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DataConnectionRead,
    responses=problems(403, 413),
)
async def create_data_connection(
    body: DataConnectionCreate, session: SessionDep, principal: PrincipalDep
) -> DataConnectionRead:
    row = await service.create_data_connection(session, principal, body)
    return DataConnectionRead.model_validate(row)


@router.get("", response_model=Page[DataConnectionRead])
async def list_data_connections(
    session: SessionDep, principal: PrincipalDep, page: PageDep
) -> Page[DataConnectionRead]:
    rows, total = await service.list_data_connections(session, principal, page.limit, page.offset)
    items = [DataConnectionRead.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{data_connection_id}", response_model=DataConnectionRead, responses=problems(404))
async def get_data_connection(
    data_connection_id: RowId, session: SessionDep, principal: PrincipalDep
) -> DataConnectionRead:
    row = await service.get_data_connection(session, principal, data_connection_id)
    return DataConnectionRead.model_validate(row)


@router.patch(
    "/{data_connection_id}", response_model=DataConnectionRead, responses=problems(404, 413)
)
async def update_data_connection(
    data_connection_id: RowId,
    body: DataConnectionUpdate,
    session: SessionDep,
    principal: PrincipalDep,
) -> DataConnectionRead:
    row = await service.update_data_connection(session, principal, data_connection_id, body)
    return DataConnectionRead.model_validate(row)


@router.delete(
    "/{data_connection_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409)
)
async def delete_data_connection(
    data_connection_id: RowId, session: SessionDep, principal: PrincipalDep
) -> Response:
    await service.delete_data_connection(session, principal, data_connection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{data_connection_id}/market-data", response_model=IngestResult, responses=problems(404, 413)
)
async def ingest_market_data(
    data_connection_id: RowId,
    body: MarketDataIngest,
    session: SessionDep,
    ctx: ContextDep,
    principal: PrincipalDep,
) -> IngestResult:
    stored = await service.ingest(session, principal, data_connection_id, body)
    ctx.prices_changed.set()  # this process's monitor ticks now, not at its next interval
    return IngestResult(stored=stored)


@router.get(
    "/{data_connection_id}/market-data/latest", response_model=LatestPrice, responses=problems(404)
)
async def latest_price(
    data_connection_id: RowId,
    symbol: Annotated[str, Query(min_length=3, max_length=64)],
    session: SessionDep,
    principal: PrincipalDep,
) -> LatestPrice:
    row = await service.latest_price(session, principal, data_connection_id, symbol)
    return LatestPrice(symbol=row.symbol, price=row.close, timestamp=row.timestamp)
