"""Positions: read, amend stops, and close. A close claims the position `open -> closing` in one
conditional UPDATE, so of any number of callers (API, monitor, other worker processes) exactly
one sends the exit order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.db import utcnow
from execution_service.decimals import round_down
from execution_service.errors import BadGateway, Conflict, NotFound, Unprocessable
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError
from execution_service.logs import service as logs
from execution_service.models import ExecutionConnection, ExecutionLog, ExecutionPosition
from execution_service.positions import fills, repository
from execution_service.positions.pnl import sign
from execution_service.positions.schemas import items_json, page_json
from execution_service.principal import Principal


async def list_positions(
    conn: AsyncConnection,
    principal: Principal,
    *,
    status: str | None,
    connection_id: int | None,
    symbol: str | None,
    limit: int,
    offset: int,
) -> bytes:
    """One page, newest first, as the JSON of `Page[PositionRead]`: one statement (see
    `repository`), a second only for a page with take profits (PostgreSQL) or past the end."""
    rows_stmt, json_stmt, count_stmt = repository.statements(
        principal.is_user, status is not None, connection_id is not None, symbol is not None
    )
    params = {
        "user_id": principal.user_id,
        "status": status,
        "connection_id": connection_id,
        "symbol": symbol,
        "limit": limit,
        "offset": offset,
    }
    if conn.dialect.name == "postgresql":
        items, total, take_profits = (await conn.execute(json_stmt, params)).one()
        if items is None:
            total = 0 if offset == 0 else await conn.scalar(count_stmt, params)
            return items_json(None, total or 0, limit, offset)
        if not take_profits:
            return items_json(items, total, limit, offset)
    rows = (await conn.execute(rows_stmt, params)).all()
    if rows:
        return page_json(rows, rows[0][-1], limit, offset)
    total = 0 if offset == 0 else await conn.scalar(count_stmt, params)
    return page_json(rows, total or 0, limit, offset)


async def get_position(
    session: AsyncSession, principal: Principal, position_id: int
) -> ExecutionPosition:
    stmt = principal.scope(select(ExecutionPosition), ExecutionPosition).where(
        ExecutionPosition.id == position_id
    )
    position = (await session.scalars(stmt)).first()
    if position is None:
        raise NotFound(f"position {position_id} not found")
    return position


async def update_position(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    position_id: int,
    changes: dict[str, Any],
) -> ExecutionPosition:
    position = await get_position(session, principal, position_id)
    if position.status != "open":
        raise Conflict(f"position {position_id} is {position.status}", code="position_not_open")
    reference = position.current_price or position.entry_price
    direction = sign(position.direction)
    sl, tp = changes.get("sl_price"), changes.get("tp_price")
    if sl is not None and (reference - sl) * direction <= 0:
        raise Unprocessable(
            f"sl_price {sl} is on the wrong side of the current price {reference}",
            code="invalid_stops",
        )
    if tp is not None and (tp - reference) * direction <= 0:
        raise Unprocessable(
            f"tp_price {tp} is on the wrong side of the current price {reference}",
            code="invalid_stops",
        )
    for field, value in changes.items():
        setattr(position, field, value)
    if "trailing_stop_percent" in changes:
        position.best_price = reference
    if {"sl_price", "tp_price"} & changes.keys():
        await _sync_broker_stops(session, ctx, position)
    await session.commit()
    return position


async def _sync_broker_stops(
    session: AsyncSession, ctx: AppContext, position: ExecutionPosition
) -> None:
    """Where the venue holds the stops (`amends_stops`: MetaTrader), amend them there first: if
    it refuses, nothing changes here either."""
    conn = await session.get(ExecutionConnection, position.execution_connection_id)
    if conn is None or not ctx.adapters.capabilities(conn).amends_stops:
        return
    ticket = await session.scalar(
        select(ExecutionLog.order_id).where(ExecutionLog.id == position.execution_log_id)
    )
    try:
        adapter = await ctx.adapters.for_connection(conn)
        await adapter.amend_stops(
            position.symbol, ticket or "", sl=position.sl_price, tp=position.tp_price
        )
    except (CredentialsError, ExchangeError) as exc:
        await session.rollback()
        raise BadGateway(
            f"the broker did not amend the stops: {exc}", code="broker_refused"
        ) from None


def new_exit_log(
    ctx: AppContext,
    position: ExecutionPosition,
    quantity: Decimal,
    reason: str,
    n: int,
    full_close: bool,
) -> ExecutionLog:
    """The `pending` row of the n-th exit order of a position."""
    return ExecutionLog(
        user_id=position.user_id,
        admin_id=position.admin_id,
        execution_connection_id=position.execution_connection_id,
        signal_id=position.signal_id,
        position_id=position.id,
        purpose="exit",
        client_order_id=logs.exit_client_order_id(ctx.settings.client_order_prefix, position.id, n),
        symbol=position.symbol,
        direction="sell" if position.direction == "buy" else "buy",
        order_type="market",
        quantity=quantity,
        price=position.current_price,
        status="pending",
        close_reason=reason,
        received_at=utcnow(),
        plan={"full_close": full_close},
    )


async def claim_for_close(
    session: AsyncSession,
    ctx: AppContext,
    position: ExecutionPosition,
    quantity: Decimal,
    reason: str,
    *,
    full_close: bool,
) -> ExecutionLog | None:
    """`open -> closing` and the exit order's `pending` row, committed together. None if another
    caller already holds the position."""
    claimed = await session.execute(
        update(ExecutionPosition)
        .where(ExecutionPosition.id == position.id, ExecutionPosition.status == "open")
        .values(status="closing", updated_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        return None
    n = await fills.exit_count(session, position.id) + 1
    exit_log = new_exit_log(ctx, position, quantity, reason, n, full_close)
    session.add(exit_log)
    await session.commit()
    return exit_log


async def _adapter(ctx: AppContext, connection_id: int) -> ExchangeAdapter:
    async with ctx.session_factory() as session:
        conn = await session.get(ExecutionConnection, connection_id)
        assert conn is not None
    return await ctx.adapters.for_connection(conn)


async def exit_quantity(
    adapter: ExchangeAdapter, position: ExecutionPosition, requested: Decimal | None
) -> tuple[Decimal, bool]:
    """The quantity an exit order can carry (rounded down to the market's step), and whether it
    closes the whole position."""
    market = await adapter.market(position.symbol)
    wanted = position.quantity if requested is None else min(requested, position.quantity)
    return round_down(wanted, market.amount_step), wanted >= position.quantity


async def send_exit(
    ctx: AppContext, exit_log: ExecutionLog, adapter: ExchangeAdapter | None = None
) -> ExecutionLog:
    """`adapter`: the connection's, when the caller (a batch of closes) already holds it."""
    try:
        if adapter is None:
            adapter = await _adapter(ctx, exit_log.execution_connection_id)
    except (CredentialsError, ExchangeError) as exc:
        async with ctx.session_factory() as session:
            entry = await session.get(ExecutionLog, exit_log.id)
            assert entry is not None
            conn = await session.get(ExecutionConnection, entry.execution_connection_id)
            name = conn.adapter if conn is not None else "unknown"
            logs.reject(entry, "credentials_error", str(exc), adapter=name)
            await fills.release_exit(session, entry)
            await session.commit()
            return entry
    return await logs.send(ctx, exit_log.id, adapter)


async def close_position(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    position_id: int,
    quantity: Decimal | None,
) -> ExecutionLog:
    position = await get_position(session, principal, position_id)
    if position.status != "open":
        raise Conflict(f"position {position_id} is {position.status}", code="position_not_open")
    if quantity is not None and quantity > position.quantity:
        raise Unprocessable(
            f"quantity {quantity} exceeds the open quantity {position.quantity}",
            code="quantity_too_large",
        )
    await session.commit()  # no transaction while the exchange answers
    try:
        adapter = await _adapter(ctx, position.execution_connection_id)
        amount, full = await exit_quantity(adapter, position, quantity)
    except (CredentialsError, ExchangeError) as exc:
        raise BadGateway(f"cannot reach the exchange: {exc}", code="exchange_unavailable") from None
    if amount <= 0:
        raise Unprocessable(
            "the quantity rounds down to nothing at the market's step", code="below_minimum"
        )
    exit_log = await claim_for_close(session, ctx, position, amount, "manual", full_close=full)
    if exit_log is None:
        raise Conflict(f"position {position_id} is already being closed", code="position_not_open")
    return await send_exit(ctx, exit_log)
