"""A fee paid in a third currency (BNB on Binance) is booked in the quote currency at the fill's
FEE/QUOTE price; an order's fees are summed per currency. Figures worked out by hand."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from execution_service.orders.fills import position_terms
from tests.factories import Actor
from tests.fakes.binance import FakeBinance
from tests.signals.test_ccxt_flow import ccxt_connection


@pytest.mark.parametrize(
    ("fees", "prices", "held", "in_quote"),
    [
        ({"USDT": D("0.5")}, {}, D(1), D("0.5")),  # quote: as it is
        # base (Binance's default on a buy): 0.001 BTC less held, worth 0.001 x 500 = 0.5
        ({"BTC": D("0.001")}, {}, D("0.999"), D("0.5")),
        ({"BNB": D("0.000625")}, {"BNB": D(600)}, D(1), D("0.375")),  # 0.000625 x 600
        ({"BNB": D("0.000625")}, {}, D(1), D(0)),  # no BNB/USDT price: 0, said in the log
        # two fills, one in BNB and one in USDT: 0.0003 x 600 + 0.2 = 0.38
        ({"BNB": D("0.0003"), "USDT": D("0.2")}, {"BNB": D(600)}, D(1), D("0.38")),
    ],
)
def test_position_terms(fees: dict[str, D], prices: dict[str, D], held: D, in_quote: D) -> None:
    fill = position_terms("BTC/USDT", D(1), D(500), fees, prices)
    assert (fill.quantity, fill.price, fill.fee) == (held, D(500), in_quote)


async def _position(user: Actor, position_id: int) -> dict[str, Any]:
    return await user.ok("GET", f"/api/v1/positions/{position_id}")  # type: ignore[no-any-return]


async def test_a_bnb_fee_is_booked_in_quote(user: Actor, fake_binance: FakeBinance) -> None:
    fake_binance.bnb_burn = True
    fake_binance.set_balances({"USDT": "10000", "BTC": "0", "BNB": "1"})
    conn = await ccxt_connection(
        user, fake_binance, position_size_mode="fixed_quantity", position_size_value="0.01"
    )
    body = {"symbol": "BTC/USDT", "direction": "buy", "connection_ids": [conn["id"]]}
    opened = await user.ok("POST", "/api/v1/signals", 201, json=body)
    execution = opened["executions"][0]
    log = await user.ok("GET", f"/api/v1/logs/{execution['execution_log_id']}")
    # 0.01 x 50000 = 500 cost; fee 0.1 % less 25 % = 0.375 USDT = 0.375 / 600 = 0.000625 BNB.
    assert (log["fee"], log["fee_currency"]) == ("0.000625", "BNB")
    assert log["fee_in_quote"] == "0.375"
    position = await _position(user, execution["position_id"])
    # Held in full (the fee came out of BNB), and booked at the BNB/USDT price: 0.375.
    assert (position["quantity"], position["fees"]) == ("0.01", "0.375")
    assert position["realized_pnl"] == "-0.375"
    fake_binance.set_price("BTC/USDT", "51000")
    closed = await user.ok("POST", f"/api/v1/positions/{execution['position_id']}/close")
    # Exit: 0.01 x 51000 = 510; 510 x 0.00075 = 0.3825 USDT = 0.0006375 BNB at 600.
    # PnL (51000 - 50000) x 0.01 - 0.375 - 0.3825 = 9.2425.
    assert closed["execution"]["fee"] == "0.0006375"
    assert (closed["position"]["fees"], closed["position"]["pnl"]) == ("0.7575", "9.2425")
    assert fake_binance.balance("BNB")[0] == D("0.9987375")  # 1 - 0.000625 - 0.0006375
