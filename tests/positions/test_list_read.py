"""The list endpoint builds its JSON from plain rows (money formatted by the database); the single
read goes through PositionRead. Both must say the same thing, byte for byte, for any stored value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text, update

from execution_service.context import AppContext
from execution_service.decimals import to_str
from execution_service.models import ExecutionPosition
from execution_service.positions.rules import trailing_level
from execution_service.positions.schemas import DERIVED_FIELDS, MONEY_FIELDS, PositionRead
from tests.factories import Actor, paper_setup

FQ1 = {"position_size_mode": "fixed_quantity", "position_size_value": "1"}

# Each case overwrites some columns of one open position; the rest keep the signal's values.
CASES: list[dict[str, Any]] = [
    {},
    {"quantity": Decimal("1.500"), "entry_price": Decimal("100.00"), "fees": Decimal("0E-8")},
    {"pnl": Decimal("-0.000000012345678901"), "pnl_percentage": Decimal("-12.3400")},
    {"current_price": Decimal("1E+5"), "sl_price": Decimal("1.0E+2"), "tp_price": Decimal("2E+5")},
    {"realized_pnl": Decimal("123456789012345678.123456789012345678")},
    {"sl_price": None, "tp_price": None, "current_price": None, "close_price": Decimal("7.10")},
    {"trailing_stop_percent": Decimal("2.50"), "break_even_trigger_rr": Decimal("1")},
    # The trailing level, derived: from the high-water mark, or the entry before the first mark.
    {"trailing_stop_percent": Decimal("2.5"), "best_price": Decimal("108.40")},
    {"trailing_stop_percent": Decimal("100"), "best_price": Decimal("1E+2")},
    {"trailing_stop_percent": Decimal("0.000000000000000001"), "best_price": None},
    {
        "direction": "sell",
        "trailing_stop_percent": Decimal("33.333333333333333333"),
        "best_price": Decimal("123456789012345678.123456789012345678"),
    },
    {"best_price": Decimal("99.5000"), "trailing_stop_percent": None},
    {
        "take_profits": [
            {"price": "110.50", "close_percent": "50.0"},
            {"price": 120, "close_percent": 50},
        ]
    },
    {"take_profits": []},
    {  # a page with take profits is read as rows: the level is computed in Python there
        "take_profits": [{"price": "90", "close_percent": "100"}],
        "direction": "sell",
        "trailing_stop_percent": Decimal("1.25"),
        "best_price": Decimal("97.3"),
    },
    {"last_price_update_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "closed_reason": "manual"},
    {"opened_at": datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC), "signal_id": None},
]


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
async def test_list_item_equals_single_read(
    user: Actor, ctx: AppContext, case: dict[str, Any]
) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    position_id = (await acct.signal())["executions"][0]["position_id"]
    if case:
        async with ctx.session_factory() as session:
            await session.execute(
                update(ExecutionPosition).where(ExecutionPosition.id == position_id).values(**case)
            )
            await session.commit()
    single = await user.get(f"/api/v1/positions/{position_id}")
    listed = await user.get("/api/v1/positions", params={"connection_id": acct.conn_id})
    assert single.status_code == listed.status_code == 200
    page = json.loads(listed.content)
    assert page["total"] == 1 and page["limit"] == 50 and page["offset"] == 0
    # The very bytes of the single read, inside the page.
    assert json.dumps(page["items"][0], separators=(",", ":")) == single.text
    assert single.text.encode() in listed.content
    item = page["items"][0]
    for field, value in case.items():
        if field in MONEY_FIELDS:
            assert item[field] == (None if value is None else to_str(value))
    # What the trailing stop would close at: the rules' own level, as a decimal string.
    if item["trailing_stop_percent"] is None:
        assert item["trailing_stop_price"] is None
    else:
        best = Decimal(item["best_price"] or item["entry_price"])
        percent = Decimal(item["trailing_stop_percent"])
        level = trailing_level(item["direction"], best, percent)
        assert item["trailing_stop_price"] == to_str(level)


async def test_money_fields_are_the_decimal_fields_of_position_read() -> None:
    decimal_fields = {
        name
        for name, info in PositionRead.model_fields.items()
        if "Decimal" in str(info.annotation)
    }
    assert decimal_fields == MONEY_FIELDS
    derived = {
        name
        for name, info in PositionRead.model_computed_fields.items()
        if "Decimal" in str(info.return_type)
    }
    assert derived == DERIVED_FIELDS == {"trailing_stop_price", "return_on_margin"}


async def test_total_rides_with_the_page_and_past_the_end(user: Actor) -> None:
    acct = await paper_setup(user, price="100", **FQ1)
    ids = [(await acct.signal())["executions"][0]["position_id"] for _ in range(3)]
    url = "/api/v1/positions"
    params: dict[str, Any] = {"connection_id": acct.conn_id, "limit": 2}
    first = await user.ok("GET", url, params=params)
    assert [i["id"] for i in first["items"]] == ids[::-1][:2] and first["total"] == 3
    second = await user.ok("GET", url, params={**params, "offset": 2})
    assert [i["id"] for i in second["items"]] == ids[:1] and second["total"] == 3
    # Past the end there is no row to carry the total: counted on its own.
    beyond = await user.ok("GET", url, params={**params, "offset": 10})
    assert beyond == {"items": [], "total": 3, "limit": 2, "offset": 10}
    none = await user.ok("GET", url, params={"connection_id": acct.conn_id, "status": "closed"})
    assert none == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_a_page_with_trailing_levels_is_one_statement(user: Actor, ctx: AppContext) -> None:
    """The derived trailing level costs no extra query: the page is still one statement (the
    level is computed in the statement on PostgreSQL, from the row in Python on SQLite)."""
    acct = await paper_setup(user, price="100", trailing_stop_percent="2", **FQ1)
    for _ in range(3):
        await acct.signal()
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(ctx.reader.sync_engine, "before_cursor_execute", count)
    try:
        page = await user.ok("GET", "/api/v1/positions", params={"connection_id": acct.conn_id})
    finally:
        event.remove(ctx.reader.sync_engine, "before_cursor_execute", count)
    assert [s for s in statements if "execution_positions" in s] == statements
    assert len(statements) == 1, statements
    assert [i["trailing_stop_price"] for i in page["items"]] == ["98"] * 3


async def test_a_read_survives_a_database_restart(
    user: Actor, ctx: AppContext, is_postgres: bool
) -> None:
    """The read engine has no pre-ping: a pooled connection the server dropped is retried once
    on a fresh one instead of failing the request."""
    if not is_postgres:
        pytest.skip("terminating server connections is PostgreSQL's")
    acct = await paper_setup(user, price="100", **FQ1)
    await acct.signal()
    url, params = "/api/v1/positions", {"connection_id": acct.conn_id}
    before = await user.ok("GET", url, params=params)
    async with ctx.engine.connect() as conn:
        killed = await conn.scalar(
            text(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                " where datname = current_database() and pid <> pg_backend_pid()"
            )
        )
    assert killed
    assert await user.ok("GET", url, params=params) == before
