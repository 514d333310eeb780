from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.db import utcnow
from execution_service.enums import DataSourceType
from execution_service.errors import Conflict, NotFound, Unprocessable
from execution_service.market_data.repository import DataConnectionRepository, MarketDataRepository
from execution_service.market_data.schemas import (
    DataConnectionCreate,
    DataConnectionUpdate,
    MarketDataIngest,
)
from execution_service.models import DataConnection, MarketData
from execution_service.principal import Principal


async def create_data_connection(
    session: AsyncSession, principal: Principal, body: DataConnectionCreate
) -> DataConnection:
    user_id, admin_id = principal.owner_for_create(body.user_id, body.admin_id)
    fields = body.model_dump(exclude={"user_id", "admin_id"})
    fields["api_base_url"] = str(body.api_base_url) if body.api_base_url else None
    row = DataConnection(**fields, user_id=user_id, admin_id=admin_id)
    session.add(row)
    await session.commit()
    return row


async def get_data_connection(
    session: AsyncSession, principal: Principal, data_connection_id: int
) -> DataConnection:
    row = await DataConnectionRepository(session).get(principal, data_connection_id)
    if row is None:
        raise NotFound(f"data connection {data_connection_id} not found")
    return row


async def list_data_connections(
    session: AsyncSession, principal: Principal, limit: int, offset: int
) -> tuple[Sequence[DataConnection], int]:
    return await DataConnectionRepository(session).list(principal, limit, offset)


async def update_data_connection(
    session: AsyncSession, principal: Principal, data_connection_id: int, body: DataConnectionUpdate
) -> DataConnection:
    row = await get_data_connection(session, principal, data_connection_id)
    changes = body.model_dump(exclude_unset=True)
    for required in ("name", "sandbox", "market_type", "is_active"):
        if required in changes and changes[required] is None:
            raise Unprocessable(f"{required} cannot be null")
    if "api_base_url" in changes and changes["api_base_url"] is not None:
        changes["api_base_url"] = str(changes["api_base_url"])
    for field, value in changes.items():
        setattr(row, field, value)
    if row.type == DataSourceType.ccxt and not row.exchange:
        raise Unprocessable("a ccxt data connection needs an exchange id")
    await session.commit()
    return row


async def delete_data_connection(
    session: AsyncSession, principal: Principal, data_connection_id: int
) -> None:
    row = await get_data_connection(session, principal, data_connection_id)
    if await DataConnectionRepository(session).is_referenced(data_connection_id):
        raise Conflict(
            f"data connection {data_connection_id} is used by a connection: unlink it first",
            code="data_connection_in_use",
        )
    await session.delete(row)
    await session.commit()


async def ingest(
    session: AsyncSession, principal: Principal, data_connection_id: int, body: MarketDataIngest
) -> int:
    await get_data_connection(session, principal, data_connection_id)
    now = utcnow()
    rows: dict[tuple[str, str, Any], dict[str, Any]] = {}
    # One statement cannot touch the same key twice (PostgreSQL refuses): the last point wins.
    for p in body.prices:
        ts = p.timestamp or now
        rows[(p.symbol, "tick", ts)] = {
            "data_connection_id": data_connection_id,
            "symbol": p.symbol,
            "timeframe": "tick",
            "timestamp": ts,
            "open": None,
            "high": None,
            "low": None,
            "close": p.price,
            "volume": None,
        }
    for b in body.bars:
        rows[(b.symbol, b.timeframe, b.timestamp)] = {
            "data_connection_id": data_connection_id,
            **b.model_dump(),
        }
    await MarketDataRepository(session).upsert(list(rows.values()))
    await session.commit()
    return len(rows)


async def latest_price(
    session: AsyncSession, principal: Principal, data_connection_id: int, symbol: str
) -> MarketData:
    await get_data_connection(session, principal, data_connection_id)
    row = await MarketDataRepository(session).latest(data_connection_id, symbol)
    if row is None:
        raise NotFound(
            f"no price for {symbol} on data connection {data_connection_id}", code="no_price"
        )
    return row
