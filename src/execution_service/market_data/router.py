from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from execution_service.deps import ContextDep, PageDep, PrincipalDep, RowId, SessionDep
from execution_service.market_data import service
from execution_service.market_data.bars import TICK
from execution_service.market_data.schemas import (
    DataConnectionCreate,
    DataConnectionRead,
    DataConnectionTestResult,
    DataConnectionUpdate,
    HistoryTimeframe,
    IngestResult,
    LatestPrice,
    MarketDataIngest,
    MarketDataPage,
)
from execution_service.schemas import Instant, Page, Symbol, problems

router = APIRouter(prefix="/data-connections", tags=["data-connections"])

_CSV_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
_CSV_DOC: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DataConnectionRead,
    responses=problems(403, 413),
)
async def create_data_connection(
    body: DataConnectionCreate, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> DataConnectionRead:
    row = await service.create_data_connection(session, ctx, principal, body)
    return service.read(row, ctx.settings)


@router.get("", response_model=Page[DataConnectionRead])
async def list_data_connections(
    session: SessionDep, ctx: ContextDep, principal: PrincipalDep, page: PageDep
) -> Page[DataConnectionRead]:
    rows, total = await service.list_data_connections(session, principal, page.limit, page.offset)
    items = [service.read(r, ctx.settings) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{data_connection_id}", response_model=DataConnectionRead, responses=problems(404))
async def get_data_connection(
    data_connection_id: RowId, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> DataConnectionRead:
    row = await service.get_data_connection(session, principal, data_connection_id)
    return service.read(row, ctx.settings)


@router.patch(
    "/{data_connection_id}", response_model=DataConnectionRead, responses=problems(404, 413)
)
async def update_data_connection(
    data_connection_id: RowId,
    body: DataConnectionUpdate,
    session: SessionDep,
    ctx: ContextDep,
    principal: PrincipalDep,
) -> DataConnectionRead:
    row = await service.update_data_connection(session, ctx, principal, data_connection_id, body)
    return service.read(row, ctx.settings)


@router.delete(
    "/{data_connection_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409)
)
async def delete_data_connection(
    data_connection_id: RowId, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> Response:
    await service.delete_data_connection(session, ctx, principal, data_connection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{data_connection_id}/test", response_model=DataConnectionTestResult, responses=problems(404)
)
async def test_data_connection(
    data_connection_id: RowId, session: SessionDep, ctx: ContextDep, principal: PrincipalDep
) -> DataConnectionTestResult:
    """Reach the source now; records `last_tested_at`, `last_error`, `consecutive_failures`."""
    return await service.test_data_connection(session, ctx, principal, data_connection_id)


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
    # This process's monitor judges these symbols' positions now, not at its next interval.
    symbols = {p.symbol for p in body.prices} | {b.symbol for b in body.bars}
    ctx.prices_arrived(data_connection_id, symbols)
    return IngestResult(stored=stored)


@router.get(
    "/{data_connection_id}/market-data",
    response_model=MarketDataPage,
    responses={**_CSV_DOC, **problems(404)},
)
async def market_data_history(
    data_connection_id: RowId,
    symbol: Annotated[Symbol, Query()],
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    timeframe: Annotated[
        HistoryTimeframe, Query(description="tick (the default) or a bar timeframe")
    ] = TICK,
    since: Annotated[Instant | None, Query(description="inclusive (UTC)")] = None,
    until: Annotated[Instant | None, Query(description="exclusive (UTC)")] = None,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> MarketDataPage | Response:
    """A symbol's stored ticks or bars in [since, until), oldest first. Bars of a timeframe
    with none stored are built from the stored ticks (`built: true`). The CSV is the same page,
    with `X-Total-Count` and `X-Bars-Built` headers."""
    query = {"symbol": symbol, "timeframe": timeframe, "since": since, "until": until}
    result = await service.history(
        session, principal, data_connection_id, query, page.limit, page.offset
    )
    if fmt == "csv":
        return _csv(data_connection_id, result)
    return result


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


def _csv(data_connection_id: int, result: MarketDataPage) -> Response:
    # Only times and numbers go in: no user text, so nothing for a spreadsheet to run.
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    for row in result.items:
        data = row.model_dump(mode="json")
        writer.writerow(["" if data[c] is None else data[c] for c in _CSV_COLUMNS])
    name = f"market-data-{data_connection_id}-{result.symbol.replace('/', '-').replace(':', '-')}"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}-{result.timeframe}.csv"',
        "X-Total-Count": str(result.total),
        "X-Bars-Built": "true" if result.built else "false",
    }
    return Response(out.getvalue(), media_type="text/csv", headers=headers)
