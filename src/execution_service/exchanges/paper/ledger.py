"""A batch's statements: the paper venue's rows of many accounts read as plain values (no ORM
instances) and written back set-based, a few statements for any number of orders.

PostgreSQL writes each table in one statement over `unnest`ed arrays (NUMERIC casts keep every
Decimal exact); SQLite runs the same rows as one executemany (its own multi-row VALUES)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from execution_service.decimals import ZERO
from execution_service.enums import Direction, OrderStatus, OrderType
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
        """Write new orders; each gets its id. PostgreSQL inserts the rows in the orders' order
        (ORDER BY the array index), so the sequence hands them increasing ids, as SQLAlchemy's
        own multi-row INSERT relies on; SQLite's RETURNING rows are matched by their unique
        (connection, client order id) (SQLAlchemy's ordered RETURNING inserts row by row)."""
        if not orders:
            return
        if self.pg:
            params = {**_order_arrays(orders), "now": now}
            ids = sorted((await self.conn.execute(_PG_INSERT_ORDERS, params)).scalars())
        else:
            values = [_order_values(o, now) for o in orders]
            stmt = insert(ORDER_TABLE).returning(
                ORDERS.id, ORDERS.connection_id, ORDERS.client_order_id
            )
            by_key = {(c, k): i for i, c, k in await self.conn.execute(stmt, values)}
            ids = [by_key[(o.connection_id, o.client_order_id)] for o in orders]
        for o, order_id in zip(orders, ids, strict=True):
            o.id, o.updated_at = order_id, now

    async def update_balances(self, balances: Sequence[BalanceRow]) -> None:
        if not balances:
            return
        if self.pg:
            await self.conn.execute(
                _PG_UPDATE_BALANCES,
                {
                    "ids": [b.id for b in balances],
                    "free": _texts([b.free for b in balances]),
                    "used": _texts([b.used for b in balances]),
                },
            )
            return
        stmt = (
            update(BALANCE_TABLE)
            .where(BALANCES.id == bindparam("b_id"))
            .values(free=bindparam("b_free"), used=bindparam("b_used"))
        )
        await self.conn.execute(
            stmt, [{"b_id": b.id, "b_free": b.free, "b_used": b.used} for b in balances]
        )

    async def write_holdings(self, holdings: Sequence[HoldingRow]) -> None:
        """Update the holdings that were read, insert the new ones."""
        old = [h for h in holdings if h.id is not None]
        new = [h for h in holdings if h.id is None]
        if self.pg:
            if old:
                await self.conn.execute(
                    _PG_UPDATE_HOLDINGS, {"ids": [h.id for h in old], **_holding_arrays(old)}
                )
            if new:
                params = {
                    "conns": [h.connection_id for h in new],
                    "symbols": [h.symbol for h in new],
                    **_holding_arrays(new),
                }
                await self.conn.execute(_PG_INSERT_HOLDINGS, params)
            return
        if old:
            stmt = (
                update(HOLDING_TABLE)
                .where(HOLDINGS.id == bindparam("h_id"))
                .values(
                    quantity=bindparam("h_quantity"),
                    average_price=bindparam("h_average_price"),
                    margin=bindparam("h_margin"),
                )
            )
            await self.conn.execute(stmt, [_holding_values(h, "h_") for h in old])
        if new:
            values = [_holding_values(h) for h in new]
            await self.conn.execute(insert(HOLDING_TABLE), values)


def _holding_values(h: HoldingRow, prefix: str = "") -> dict[str, Any]:
    values = {"quantity": h.quantity, "average_price": h.average_price, "margin": h.margin}
    if prefix:
        return {"h_id": h.id, **{prefix + k: v for k, v in values.items()}}
    return {"connection_id": h.connection_id, "symbol": h.symbol, **values}


def _holding_arrays(holdings: Sequence[HoldingRow]) -> dict[str, list[str | None]]:
    return {
        "quantity": _texts([h.quantity for h in holdings]),
        "average_price": _texts([h.average_price for h in holdings]),
        "margin": _texts([h.margin for h in holdings]),
    }


def _order_values(o: OrderRow, now: datetime) -> dict[str, Any]:
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


def _order_arrays(orders: Sequence[OrderRow]) -> dict[str, list[Any]]:
    """The orders as column arrays; the vocabularies' values checked as the ORM's type checks
    them (a typo fails the batch, never reaches the table)."""
    return {
        "conns": [o.connection_id for o in orders],
        "cids": [o.client_order_id for o in orders],
        "symbols": [o.symbol for o in orders],
        "sides": [Direction(o.side).value for o in orders],
        "types": [OrderType(o.type).value for o in orders],
        "amounts": _texts([o.amount for o in orders]),
        "prices": _texts([o.price for o in orders]),
        "filled": _texts([o.filled for o in orders]),
        "averages": _texts([o.average for o in orders]),
        "fees": _texts([o.fee for o in orders]),
        "fee_currencies": [o.fee_currency for o in orders],
        "reserved": _texts([o.reserved for o in orders]),
        "statuses": [OrderStatus(o.status).value for o in orders],
    }


def _texts(values: Sequence[Decimal | None]) -> list[str | None]:
    """Decimals for a NUMERIC array parameter, sent as their text and cast by the server
    (`CAST(:x AS TEXT[])::NUMERIC[]`): exact, and cheaper to send than binary NUMERIC."""
    return [None if v is None else str(v) for v in values]


_PG_INSERT_ORDERS = text(
    """
    INSERT INTO paper_orders (connection_id, client_order_id, symbol, side, type, amount, price,
        filled, average, fee, fee_currency, reserved, status, created_at, updated_at)
    SELECT v.conn, v.cid, v.symbol, v.side, v.type, v.amount, v.price, v.filled, v.average,
        v.fee, v.fee_currency, v.reserved, v.status,
        CAST(:now AS TIMESTAMPTZ), CAST(:now AS TIMESTAMPTZ)
    FROM unnest(
        CAST(:conns AS INTEGER[]),
        CAST(:cids AS VARCHAR[]),
        CAST(:symbols AS VARCHAR[]),
        CAST(:sides AS VARCHAR[]),
        CAST(:types AS VARCHAR[]),
        CAST(:amounts AS TEXT[])::NUMERIC[],
        CAST(:prices AS TEXT[])::NUMERIC[],
        CAST(:filled AS TEXT[])::NUMERIC[],
        CAST(:averages AS TEXT[])::NUMERIC[],
        CAST(:fees AS TEXT[])::NUMERIC[],
        CAST(:fee_currencies AS VARCHAR[]),
        CAST(:reserved AS TEXT[])::NUMERIC[],
        CAST(:statuses AS VARCHAR[])
    ) WITH ORDINALITY AS v(conn, cid, symbol, side, type, amount, price, filled, average, fee,
        fee_currency, reserved, status, n)
    ORDER BY v.n
    RETURNING id
    """
)

_PG_UPDATE_BALANCES = text(
    """
    UPDATE paper_balances AS b SET free = v.free, used = v.used
    FROM unnest(
        CAST(:ids AS INTEGER[]),
        CAST(:free AS TEXT[])::NUMERIC[],
        CAST(:used AS TEXT[])::NUMERIC[]
    ) AS v(id, free, used)
    WHERE b.id = v.id
    """
)

_PG_UPDATE_HOLDINGS = text(
    """
    UPDATE paper_holdings AS h
    SET quantity = v.quantity, average_price = v.average_price, margin = v.margin
    FROM unnest(
        CAST(:ids AS INTEGER[]),
        CAST(:quantity AS TEXT[])::NUMERIC[],
        CAST(:average_price AS TEXT[])::NUMERIC[],
        CAST(:margin AS TEXT[])::NUMERIC[]
    ) AS v(id, quantity, average_price, margin)
    WHERE h.id = v.id
    """
)

_PG_INSERT_HOLDINGS = text(
    """
    INSERT INTO paper_holdings (connection_id, symbol, quantity, average_price, margin)
    SELECT * FROM unnest(
        CAST(:conns AS INTEGER[]),
        CAST(:symbols AS VARCHAR[]),
        CAST(:quantity AS TEXT[])::NUMERIC[],
        CAST(:average_price AS TEXT[])::NUMERIC[],
        CAST(:margin AS TEXT[])::NUMERIC[]
    )
    """
)
