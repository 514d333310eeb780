"""Every query of the paper venue: prices of its data connections and its own tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Integer, String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.decimals import ONE, normalize
from execution_service.enums import MarketType, OrderStatus
from execution_service.exchanges.base import BalanceEntry, InvalidOrder
from execution_service.exchanges.paper.booking import Terms
from execution_service.models import (
    ExecutionConnection,
    MarketDataLatest,
    PaperBalance,
    PaperHolding,
    PaperOrder,
    TradingPreset,
)


def among(pg: bool, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`. On PostgreSQL a semi-join on one array parameter (`IN (SELECT
    unnest($1::INTEGER[]))`): one prepared statement serves any number of values, and it stays
    a join under the generic plan a prepared statement switches to (where `= ANY($1)` becomes a
    linear search of the array for every row scanned)."""
    if not pg:
        return cast(ColumnElement[bool], column.in_(values))
    kind = Integer() if isinstance(column.type, Integer) else String()
    array = bindparam(None, list(values), ARRAY(kind))
    return cast(ColumnElement[bool], column.in_(select(func.unnest(array))))


class PaperRepository:
    """The paper venue's reads in one session; the `_for_update` ones lock what they read until
    the session's transaction ends."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _pg(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    # --- prices ----------------------------------------------------------------------------------

    async def latest_price(
        self, data_connection_id: int | None, symbol: str
    ) -> MarketDataLatest | None:
        """The linked data connection's latest price of `symbol` (the table every ingest moves
        forward: one primary-key lookup)."""
        if data_connection_id is None:
            return None
        return await self.session.get(MarketDataLatest, (data_connection_id, symbol))

    async def latest_prices(
        self, data_connection_ids: Iterable[int | None], symbol: str
    ) -> dict[int | None, MarketDataLatest | None]:
        """`latest_price` of many data connections in one statement."""
        keys = list(data_connection_ids)
        wanted = {dc for dc in keys if dc is not None}
        found: dict[int | None, MarketDataLatest | None] = dict.fromkeys(keys)
        if not wanted:
            return found
        stmt = select(MarketDataLatest).where(
            MarketDataLatest.data_connection_id.in_(sorted(wanted)),
            MarketDataLatest.symbol == symbol,
        )
        for row in await self.session.scalars(stmt):
            found[row.data_connection_id] = row
        return found

    async def latest_closes(
        self, pairs: Iterable[tuple[int | None, str]]
    ) -> dict[tuple[int | None, str], Decimal | None]:
        """The latest close of each (data connection, symbol) in one statement (None: no price,
        or no data connection): a batch's orders on hundreds of symbols read them at once. It
        reads every row of the sources' and symbols' cross product that exists (one row per
        pair at most: the table of latest prices) and keeps the pairs asked for."""
        wanted = set(pairs)
        found: dict[tuple[int | None, str], Decimal | None] = dict.fromkeys(wanted)
        sources = sorted({dc for dc, _ in wanted if dc is not None})
        if not sources:
            return found
        symbols = sorted({symbol for dc, symbol in wanted if dc is not None})
        stmt = select(
            MarketDataLatest.data_connection_id, MarketDataLatest.symbol, MarketDataLatest.close
        ).where(
            among(self._pg, MarketDataLatest.data_connection_id, sources),
            among(self._pg, MarketDataLatest.symbol, symbols),
        )
        for dc_id, symbol, close in await self.session.execute(stmt):
            if (dc_id, symbol) in found:
                found[(dc_id, symbol)] = close
        return found

    # --- accounts --------------------------------------------------------------------------------

    async def balances_of(
        self, connection_ids: Sequence[int]
    ) -> dict[int, dict[str, BalanceEntry]]:
        """Every currency's balance of many paper accounts, in one query (absent: none)."""
        out: dict[int, dict[str, BalanceEntry]] = {}
        if not connection_ids:
            return out
        # Columns, not entities: a fan-out reads 10,000 accounts' balances here, to read only.
        rows = await self.session.execute(
            select(
                PaperBalance.connection_id,
                PaperBalance.currency,
                PaperBalance.free,
                PaperBalance.used,
            ).where(PaperBalance.connection_id.in_(connection_ids))
        )
        for conn_id, currency, free, used in rows:
            out.setdefault(conn_id, {})[currency] = BalanceEntry(free, used, normalize(free + used))
        return out

    async def balance_for_update(self, connection_id: int, currency: str) -> PaperBalance | None:
        stmt = select(PaperBalance).where(
            PaperBalance.connection_id == connection_id, PaperBalance.currency == currency
        )
        return (await self.session.scalars(stmt.with_for_update())).first()

    async def holding_for_update(self, connection_id: int, symbol: str) -> PaperHolding | None:
        stmt = select(PaperHolding).where(
            PaperHolding.connection_id == connection_id, PaperHolding.symbol == symbol
        )
        return (await self.session.scalars(stmt.with_for_update())).first()

    async def terms(self, connection_id: int) -> Terms:
        """How the connection trades: its preset's leverage (1 without a positive one) and
        whether it is a spot account."""
        return (await self.terms_of([connection_id])).get(connection_id, Terms())

    # --- orders ----------------------------------------------------------------------------------

    async def order_for_update(
        self,
        connection_id: int,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> PaperOrder | None:
        """One of the account's orders, by our id (digits) or else by its client order id."""
        stmt = select(PaperOrder).where(PaperOrder.connection_id == connection_id)
        if order_id is not None:
            if not order_id.isdigit():
                return None
            stmt = stmt.where(PaperOrder.id == int(order_id))
        elif client_order_id is not None:
            stmt = stmt.where(PaperOrder.client_order_id == client_order_id)
        else:
            raise InvalidOrder("an order id or client order id is needed")
        return (await self.session.scalars(stmt.with_for_update())).first()

    async def open_orders(self, connection_id: int, symbol: str | None) -> list[PaperOrder]:
        stmt = select(PaperOrder).where(
            PaperOrder.connection_id == connection_id, PaperOrder.status == OrderStatus.open
        )
        if symbol is not None:
            stmt = stmt.where(PaperOrder.symbol == symbol)
        return list(await self.session.scalars(stmt))

    # --- a batch's reads, many accounts at once ------------------------------------------------

    async def terms_of(self, connection_ids: Sequence[int]) -> dict[int, Terms]:
        """`terms` of many connections. On PostgreSQL a row per distinct (market type, leverage)
        with its connections' ids: a fan-out's accounts mostly share one preset."""
        ids: Any = ExecutionConnection.id
        if self._pg:
            ids = func.array_agg(ExecutionConnection.id)
        stmt = (
            select(ExecutionConnection.market_type, TradingPreset.leverage, ids)
            .outerjoin(TradingPreset, ExecutionConnection.preset_id == TradingPreset.id)
            .where(among(self._pg, ExecutionConnection.id, connection_ids))
        )
        if self._pg:
            stmt = stmt.group_by(ExecutionConnection.market_type, TradingPreset.leverage)
        out: dict[int, Terms] = {}
        for market_type, leverage, conn_ids in await self.session.execute(stmt):
            terms = Terms(
                leverage if leverage and leverage > 0 else ONE, market_type == MarketType.spot
            )
            out.update(dict.fromkeys(conn_ids if self._pg else [conn_ids], terms))
        return out
