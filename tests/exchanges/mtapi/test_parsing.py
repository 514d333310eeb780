"""Tickets read as orders: a broker's close books the broker's profit and no second commission."""

from __future__ import annotations

from decimal import Decimal as D

from execution_service.exchanges.mtapi.parsing import broker_close, to_order


def test_a_broker_close_does_not_charge_the_entry_commission_again() -> None:
    ticket = {
        "ticket": 7,
        "type": "Buy",
        "lots": 0.2,
        "openPrice": 1.1,
        "closePrice": 1.095,
        "commission": -1.4,  # charged on open, booked with the entry's fill
        "profit": -100,
        "comment": "es-1-1-e[sl 1.09500]",
    }
    closed = to_order(ticket, "EURUSD", is_open=False, currency="USD")
    assert closed.fee == D("1.4")  # the ticket as an order: its commission
    exit_fill = broker_close(closed, "7", D("0.2"))
    assert (exit_fill.close_reason, exit_fill.average) == ("sl", D("1.095"))
    assert (exit_fill.fee, exit_fill.fee_currency, exit_fill.realized_pnl) == (D(0), None, D(-100))
