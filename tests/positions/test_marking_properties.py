"""Property tests: the set-based marking in SQL (PostgreSQL) and the book's Python agree on random
positions and prices.

- Every mark is the same: price, unrealised PnL, PnL percent (8 places, ties to even), and the
  trailing high-water mark (the best the whole path of prices reached).
- The SQL's choice of positions a rule may act on is a superset of what `rules.evaluate_path`
  acts on over the path (a close, or a move of the stop to break-even): the stop rules exist
  twice, and this holds them together.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.enums import Direction, OrderStatus, PositionStatus, Purpose
from execution_service.market_data.sources import Move, Quote, SourceKind
from execution_service.models import ExecutionLog, ExecutionPosition
from execution_service.positions import book
from execution_service.positions.repository.marking import MarkRepository
from execution_service.positions.rules import evaluate_path, view_of
from tests.factories import Actor, paper_setup

SYMBOLS = ("P0/USDT", "P1/USDT", "P2/USDT")


def money(low: str, high: str, places: int = 8) -> st.SearchStrategy[D]:
    return st.decimals(min_value=D(low), max_value=D(high), places=places)


positions = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(SYMBOLS),
        "direction": st.sampled_from([Direction.buy, Direction.sell]),
        "entry_price": money("0.0001", "100000"),
        "quantity": money("0.00000001", "1000"),
        "sl_price": st.none() | money("0.0001", "100000"),
        "tp_price": st.none() | money("0.0001", "100000"),
        "trailing_stop_percent": st.none() | money("0.01", "50", 2),
        "best_price": st.none() | money("0.0001", "100000"),
        "break_even_trigger_rr": st.none() | money("0.1", "5", 2),
        "break_even_done": st.booleans(),
        "contract_size": st.sampled_from([None, D(1), D(100), D(100000)]),
        "take_profits": st.none()
        | st.just([{"price": "1", "close_percent": "50"}, {"price": "2", "close_percent": "50"}]),
    }
)


def _move(draw: st.DrawFn, second: int) -> Move:
    at = T0 + timedelta(seconds=second)
    close = draw(money("0.0001", "100000"))
    if draw(st.booleans()):
        return Move.tick(at, close)
    low = draw(money("0.0001", str(close)))
    high = draw(money(str(close), "100000"))
    return Move(at, close, low, high)


@st.composite
def paths(draw: st.DrawFn) -> tuple[Move, ...]:
    """A tick or a few ticks and bars, oldest first."""
    return tuple(_move(draw, i) for i in range(draw(st.integers(1, 4))))


T0 = datetime(2026, 12, 1, tzinfo=UTC)
prices = st.fixed_dictionaries({s: paths() for s in SYMBOLS})


@pytest.fixture
async def account(is_postgres: bool, user: Actor) -> Any:
    if not is_postgres:
        pytest.skip("the set-based marking is PostgreSQL's (SQLite arithmetic is floating point)")
    return await paper_setup(user)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(positions, min_size=1, max_size=12), quoted=prices)
async def test_sql_and_python_marks_agree(
    ctx: AppContext, account: Any, rows: list[dict[str, Any]], quoted: dict[str, tuple[Move, ...]]
) -> None:
    conn_id, dc_id = account.conn_id, account.data_connection["id"]
    now = utcnow()
    async with ctx.session_factory() as session:
        inserted: list[ExecutionPosition] = []
        for i, row in enumerate(rows):
            entry = ExecutionLog(
                execution_connection_id=conn_id,
                purpose=Purpose.entry,
                client_order_id=f"prop-{now.timestamp()}-{i}",
                symbol=row["symbol"],
                direction=row["direction"],
                order_type="market",
                quantity=row["quantity"],
                status=OrderStatus.filled,
            )
            session.add(entry)
            await session.flush()
            position = ExecutionPosition(
                execution_connection_id=conn_id,
                execution_log_id=entry.id,
                initial_quantity=row["quantity"],
                current_price=row["entry_price"],
                status=PositionStatus.open,
                **row,
            )
            session.add(position)
            inserted.append(position)
        await session.flush()
        before = {p.id: view_of(p) for p in inserted}
        rows_of = {p.id: p for p in inserted}
        quotes = {
            ((SourceKind.data, dc_id), s): Quote(path[-1].close, path[-1].at, path)
            for s, path in quoted.items()
        }
        candidates = await MarkRepository(session).mark_in_sql(quotes)
        marked = {
            p.id: p
            for p in await session.scalars(
                select(ExecutionPosition)
                .where(ExecutionPosition.id.in_(list(before)))
                .execution_options(populate_existing=True)
            )
        }
        await session.rollback()
    for pid, view in before.items():
        path = quoted[rows_of[pid].symbol]
        price = path[-1].close
        decision = evaluate_path(view, path)
        expected = book.mark(marked[pid], price)  # quantity and entry are unchanged by marking
        got = marked[pid]
        assert (got.current_price, got.pnl, got.pnl_percentage) == (
            price,
            expected.pnl,
            expected.pnl_percentage,
        ), view
        if decision.close is None:  # a close stops the path where it happened
            assert got.best_price == decision.best, (view, path)
        acts = decision.close is not None or (decision.break_even_done and not view.break_even_done)
        if acts:
            assert pid in candidates, (view, price, decision)
