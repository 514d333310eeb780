"""The set-based marking (PostgreSQL) against the per-position one in Python, on the same rows:
prices, PnL, PnL percent (ties rounded to even), high-water marks, break-even moves and closes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import select, update

from execution_service.context import AppContext
from execution_service.db import utcnow
from execution_service.market_data.prices import fetch_prices
from execution_service.market_data.sources import Quote, SourceKind
from execution_service.models import ExecutionLog, ExecutionPosition
from execution_service.positions import watch
from execution_service.positions.repository.marking import MarkRepository
from execution_service.positions.rules import Close
from tests.factories import Actor, paper_setup


@dataclass(frozen=True)
class Case:
    name: str
    direction: str
    entry: D
    quantity: D
    price: D
    sl: D | None = None
    tp: D | None = None
    trailing: D | None = None
    best: D | None = None
    rr: D | None = None
    contract_size: D | None = None
    take_profits: list[dict[str, Any]] | None = None
    acts: bool = False  # a rule acts on it at this price (closes, or moves the stop)


CASES = [
    Case("quiet long", "buy", D(100), D(3), D("104.5"), sl=D(90), tp=D(120)),
    Case("quiet short", "sell", D(100), D(2), D("100.5"), sl=D(110), tp=D(90)),
    Case("sl at the stop", "buy", D(100), D(2), D(95), sl=D(95), acts=True),
    Case("sl gapped short", "sell", D(100), D(2), D(111), sl=D(110), acts=True),
    Case("tp short", "sell", D(100), D(2), D("89.5"), tp=D(90), acts=True),
    Case("repeating percent", "buy", D(3), D(7), D("3.1")),  # 0.7 / 21 = 3.333...%
    Case("tie to even", "buy", D(1), D(1), D("1.00000000025")),  # 0.000000025% -> ...02
    Case("tie to even, odd", "buy", D(1), D(1), D("1.00000000015")),  # -> ...02
    Case("negative tie", "sell", D(1), D(1), D("1.00000000025")),  # -> -0.00000002
    Case("lots", "buy", D("1.1"), D("0.1"), D("1.1012"), contract_size=D(100000)),
    # 20 significant digits: the quotes' array parameters are NUMERIC, never a float between
    Case("twenty digits", "buy", D("98765.432101234567891"), D(3), D("98765.432101234567899")),
    Case("trailing hit", "buy", D(100), D(1), D(117), trailing=D(10), best=D(130), acts=True),
    Case("trailing near", "buy", D(100), D(1), D("117.01"), trailing=D(10), best=D(130)),
    Case("trailing short", "sell", D(100), D(1), D(88), trailing=D(10), best=D(80), acts=True),
    Case("new best", "buy", D(100), D(1), D(120), trailing=D(5), best=D(100)),
    Case("no best yet", "sell", D(100), D(1), D(99), trailing=D(5)),
    Case("break-even", "buy", D(100), D(1), D(108), sl=D(96), rr=D(2), acts=True),
    Case("break-even not yet", "buy", D(100), D(1), D("107.99"), sl=D(96), rr=D(2)),
    Case(
        "partial tp",
        "buy",
        D(100),
        D(10),
        D(111),
        sl=D(90),
        take_profits=[
            {"price": "110", "close_percent": "50"},
            {"price": "120", "close_percent": "50"},
        ],
        acts=True,
    ),
]
FIELDS = ("current_price", "pnl", "pnl_percentage", "best_price", "sl_price", "break_even_done")


async def _insert(ctx: AppContext, conn_id: int) -> dict[str, int]:
    ids: dict[str, int] = {}
    async with ctx.session_factory() as session:
        for i, c in enumerate(CASES):
            entry = ExecutionLog(
                execution_connection_id=conn_id,
                purpose="entry",
                client_order_id=f"marks-{i}-{utcnow().timestamp()}",
                symbol=f"M{i}/USDT",
                direction=c.direction,
                order_type="market",
                quantity=c.quantity,
                filled_quantity=c.quantity,
                status="filled",
            )
            session.add(entry)
            await session.flush()
            position = ExecutionPosition(
                execution_connection_id=conn_id,
                execution_log_id=entry.id,
                symbol=entry.symbol,
                direction=c.direction,
                quantity=c.quantity,
                initial_quantity=c.quantity,
                entry_price=c.entry,
                contract_size=c.contract_size,
                current_price=c.entry,
                sl_price=c.sl,
                tp_price=c.tp,
                take_profits=c.take_profits,
                trailing_stop_percent=c.trailing,
                best_price=c.best,
                break_even_trigger_rr=c.rr,
                status="open",
            )
            session.add(position)
            await session.flush()
            ids[c.name] = position.id
        await session.commit()
    return ids


async def _state(ctx: AppContext, ids: dict[str, int]) -> dict[str, tuple[Any, ...]]:
    async with ctx.session_factory() as session:
        rows = await session.scalars(
            select(ExecutionPosition).where(ExecutionPosition.id.in_(list(ids.values())))
        )
        by_id = {p.id: tuple(getattr(p, f) for f in FIELDS) for p in rows}
    return {name: by_id[pid] for name, pid in ids.items()}


async def _reset(ctx: AppContext, ids: dict[str, int]) -> None:
    async with ctx.session_factory() as session:
        for c in CASES:
            await session.execute(
                update(ExecutionPosition)
                .where(ExecutionPosition.id == ids[c.name])
                .values(
                    current_price=c.entry,
                    pnl=D(0),
                    pnl_percentage=D(0),
                    best_price=c.best,
                    sl_price=c.sl,
                    break_even_done=False,
                )
            )
        await session.commit()


def _closes(closes: list[tuple[ExecutionPosition, Close]]) -> dict[int, Close]:
    return {p.id: close for p, close in closes}


async def test_the_set_based_marking_equals_the_per_position_one(
    is_postgres: bool, user: Actor, ctx: AppContext
) -> None:
    if not is_postgres:
        pytest.skip("the set-based marking is PostgreSQL's (SQLite arithmetic is floating point)")
    acct = await paper_setup(user)
    for i, c in enumerate(CASES):
        await acct.price(str(c.price), f"M{i}/USDT")
    ids = await _insert(ctx, acct.conn_id)
    mine = set(ids.values())

    async def fetch(wanted: Any, connections: Any) -> Any:
        return await fetch_prices(ctx, wanted, connections)

    in_python = _closes(await watch.mark_in_python(ctx, fetch, utcnow(), watch.TickReport()))
    python_state = await _state(ctx, ids)
    await _reset(ctx, ids)
    report = watch.TickReport()
    in_sql = _closes(await watch.mark_in_sql(ctx, fetch, utcnow(), report))
    sql_state = await _state(ctx, ids)

    assert sql_state == python_state
    assert {k: v for k, v in in_sql.items() if k in mine} == {
        k: v for k, v in in_python.items() if k in mine
    }
    closing = {ids[c.name] for c in CASES if c.acts and c.name != "break-even"}
    assert set(in_sql) & mine == closing
    assert python_state["tie to even"][2] == D("0.00000002")
    assert python_state["tie to even, odd"][2] == D("0.00000002")
    assert python_state["negative tie"][2] == D("-0.00000002")
    assert python_state["break-even"][4:] == (D(100), True)
    assert python_state["new best"][3] == D(120) and python_state["no best yet"][3] == D(99)
    assert report.priced >= len(CASES)  # other tests' positions may be priced (or stale) too


async def test_only_positions_a_rule_may_act_on_are_returned(
    is_postgres: bool, user: Actor, ctx: AppContext
) -> None:
    if not is_postgres:
        pytest.skip("the set-based marking is PostgreSQL's")
    acct = await paper_setup(user)
    ids = await _insert(ctx, acct.conn_id)
    quotes = {
        ((SourceKind.data, acct.data_connection["id"]), f"M{i}/USDT"): Quote(c.price, utcnow())
        for i, c in enumerate(CASES)
    }
    async with ctx.session_factory() as session:
        candidates = await MarkRepository(session).mark_in_sql(quotes)
        await session.rollback()
    acting = {ids[c.name] for c in CASES if c.acts}
    assert acting <= set(candidates)
    # The filter is a close superset: the quiet ones are not loaded.
    assert set(candidates) == acting
    assert candidates[ids["trailing hit"]][0] == (SourceKind.data, acct.data_connection["id"])


@pytest.mark.parametrize(
    ("counts", "sizes"),
    [
        ({}, []),
        ({"A": 5}, [5]),  # one pair: one part, no empty statement
        ({"A": 5, "B": 5}, [5, 5]),
        ({"A": 9, "B": 4, "C": 3, "D": 2}, [9, 9]),  # the largest first, each to the lighter part
        ({"A": 1, "B": 1, "C": 1}, [2, 1]),
    ],
)
def test_marking_parts_cover_every_pair_once_and_balance_positions(
    counts: dict[str, int], sizes: list[int]
) -> None:
    now = utcnow()
    keys = {((SourceKind.data, 1), symbol): n for symbol, n in counts.items()}
    quotes = {key: Quote(D(1), now) for key in keys}
    parts = watch._parts(quotes, keys, split_at=0)
    assert sorted(sum(keys[k] for k in part) for part in parts) == sorted(sizes)
    assert sorted(k for part in parts for k in part) == sorted(keys)
    # Below the threshold, one statement: a woken tick's few positions.
    assert watch._parts(quotes, keys, split_at=sum(counts.values()) + 1) == (
        [quotes] if quotes else []
    )
