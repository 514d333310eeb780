"""A batch's statements: the paper venue's rows of many accounts read as plain values (no ORM
instances) and written back set-based, a few statements for any number of orders.

The writes are `setbased`'s: PostgreSQL writes each table in one statement over `unnest`ed
arrays (money as text cast to NUMERIC: every Decimal exact); SQLite runs the same rows as one
executemany (its own multi-row VALUES)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Integer, String, Table, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from execution_service import setbased
from execution_service.decimals import ZERO
from execution_service.enums import OrderStatus
from execution_service.exchanges.paper.repository import among
from execution_service.models import PaperBalance, PaperHolding, PaperOrder

BALANCE_TABLE = cast(Table, PaperBalance.__table__)
HOLDING_TABLE = cast(Table, PaperHolding.__table__)
ORDER_TABLE = cast(Table, PaperOrder.__table__)
BALANCES, HOLDINGS, ORDERS = BALANCE_TABLE.c, HOLDING_TABLE.c, ORDER_TABLE.c
SQLITE_CHUNK = 5_000  # row values per lookup: 10,000 parameters, well under SQLite's 32,766


@dataclass(slots=True)
class BalanceRow:
    """One quote balance as the batch holds it while its orders fill."""

    id: int
    currency: str
    free: Decimal
    used: Decimal


@dataclass(slots=True)
class HoldingRow:
    """One symbol's net holding; `id` None: new, inserted when the batch writes."""

    connection_id: int
    symbol: str
    quantity: Decimal = ZERO
    average_price: Decimal = ZERO
    margin: Decimal = ZERO
    id: int | None = None


@dataclass(slots=True)
class OrderRow:
    """One paper order: read (a known client order id) or placed by the batch (`id` None until
    it is written)."""

    connection_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    status: OrderStatus
    fee_currency: str | None
    filled: Decimal = ZERO
    average: Decimal | None = None
    fee: Decimal = ZERO
    reserved: Decimal = ZERO
    id: int | None = None
    updated_at: datetime | None = None


_ORDER_COLUMNS = (
    ORDERS.connection_id,
    ORDERS.client_order_id,
    ORDERS.symbol,
    ORDERS.side,
    ORDERS.type,
    ORDERS.amount,
    ORDERS.price,
    ORDERS.status,
    ORDERS.fee_currency,
    ORDERS.filled,
    ORDERS.average,
    ORDERS.fee,
    ORDERS.reserved,
    ORDERS.id,
    ORDERS.updated_at,
)


class Ledger:
    """The batch's reads (locking what it will change, in id order) and writes, on the
    connection of the batch's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    async def orders(self, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], OrderRow]:
        """The orders of these (connection, client order id), by that key: index probes on the
        unique (connection, client order id), whatever the plan. PostgreSQL joins the unnest'ed
        pairs; SQLite takes them as row values, a few thousand a statement."""
        found: dict[tuple[int, str], OrderRow] = {}
        if self.pg:
            pairs = (
                func.unnest(
                    bindparam("k_conns", [c for c, _ in keys], ARRAY(Integer())),
                    bindparam("k_cids", [k for _, k in keys], ARRAY(String())),
                )
                .table_valued("connection_id", "client_order_id")
                .render_derived("k")
            )
            on = (ORDERS.connection_id == pairs.c.connection_id) & (
                ORDERS.client_order_id == pairs.c.client_order_id
            )
            stmts = [select(*_ORDER_COLUMNS).select_from(ORDER_TABLE.join(pairs, on))]
        else:
            pair = tuple_(ORDERS.connection_id, ORDERS.client_order_id)
            stmts = [
                select(*_ORDER_COLUMNS).where(pair.in_(keys[i : i + SQLITE_CHUNK]))
                for i in range(0, len(keys), SQLITE_CHUNK)
            ]
        for stmt in stmts:
            for r in await self.conn.execute(stmt.with_for_update(of=ORDER_TABLE)):
                found[(r[0], r[1])] = OrderRow(*r)
        return found

    async def balances(
        self, connection_ids: Sequence[int], currencies: Sequence[str]
    ) -> dict[tuple[int, str], BalanceRow]:
        """The accounts' balances in these currencies, by (connection, currency)."""
        rows = await self.conn.execute(
            select(BALANCES.id, BALANCES.connection_id, BALANCES.currency, BALANCES.free)
            .add_columns(BALANCES.used)
            .where(
                among(self.pg, BALANCES.connection_id, connection_ids),
                among(self.pg, BALANCES.currency, currencies),
            )
            .order_by(BALANCES.id)
            .with_for_update()
        )
        return {(c, cur): BalanceRow(i, cur, free, used) for i, c, cur, free, used in rows}

    async def holdings(
        self, connection_ids: Sequence[int], symbols: Sequence[str]
    ) -> dict[tuple[int, str], HoldingRow]:
        """The accounts' holdings of these symbols, by (connection, symbol)."""
        rows = await self.conn.execute(
            select(HOLDINGS.connection_id, HOLDINGS.symbol, HOLDINGS.quantity)
            .add_columns(HOLDINGS.average_price, HOLDINGS.margin, HOLDINGS.id)
            .where(
                among(self.pg, HOLDINGS.connection_id, connection_ids),
                among(self.pg, HOLDINGS.symbol, symbols),
            )
            .order_by(HOLDINGS.id)
            .with_for_update()
        )
        return {(r[0], r[1]): HoldingRow(*r) for r in rows}

    async def insert_orders(self, orders: Sequence[OrderRow], now: datetime) -> None:
        """Write new orders; each gets its id, in the orders' order. SQLite's RETURNING rows are
        matched by their unique (connection, client order id): one multi-row INSERT."""
        if not orders:
            return
        rows = [_order_values(o, now) for o in orders]
        ids = await setbased.insert_rows(self.conn, ORDER_TABLE, rows, key=_ORDER_KEY)
        for o, order_id in zip(orders, ids, strict=True):
            o.id, o.updated_at = order_id, now

    async def update_balances(self, balances: Sequence[BalanceRow]) -> None:
        rows = [{"row_id": b.id, "free": b.free, "used": b.used} for b in balances]
        await setbased.update_rows(self.conn, BALANCE_TABLE, rows)

    async def write_holdings(self, holdings: Sequence[HoldingRow]) -> None:
        """Update the holdings that were read, insert the new ones."""
        old = [{"row_id": h.id, **_amounts(h)} for h in holdings if h.id is not None]
        new = [
            {"connection_id": h.connection_id, "symbol": h.symbol, **_amounts(h)}
            for h in holdings
            if h.id is None
        ]
        await setbased.update_rows(self.conn, HOLDING_TABLE, old)
        await setbased.insert_many(self.conn, HOLDING_TABLE, new)


_ORDER_KEY = ("connection_id", "client_order_id")


def _amounts(h: HoldingRow) -> dict[str, Decimal]:
    return {"quantity": h.quantity, "average_price": h.average_price, "margin": h.margin}


def _order_values(o: OrderRow, now: datetime) -> dict[str, Any]:
    """The order's row; its side, type and status are checked by their columns' vocabularies
    as the ORM checks them (a typo fails the batch, never reaches the table)."""
    return {
        "connection_id": o.connection_id,
        "client_order_id": o.client_order_id,
        "symbol": o.symbol,
        "side": o.side,
        "type": o.type,
        "amount": o.amount,
        "price": o.price,
        "filled": o.filled,
        "average": o.average,
        "fee": o.fee,
        "fee_currency": o.fee_currency,
        "reserved": o.reserved,
        "status": o.status,
        "created_at": now,
        "updated_at": now,
    }
