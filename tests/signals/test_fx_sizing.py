"""FX lot sizing, every figure worked out by hand. Account currency USD throughout."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from execution_service.signals.fx import lots_for_risk, pip_value, quote_to_account
from execution_service.signals.sizing import Rejection

ONE_150TH = D(1) / D(150)  # USDJPY at 150: one yen is 1/150 USD

# equity  risk%  entry  stop  contract  quote->USD  step  min-lot  max-lot -> lots
RISK_CASES = {
    # risk 10000 x 1% = 100 USD; 1.10000 - 1.09500 = 50 pips; loss per lot
    # 0.005 x 100000 x 1 = 500 USD (10 USD a pip x 50); 100 / 500 = 0.2 lots.
    "eurusd-long": "10000 1 1.10000 1.09500 100000 1 0.01 0.01 100 -> 0.2",
    # the same distance above the entry (a short): |1.09500 - 1.10000| = 0.005 -> 0.2 lots.
    "eurusd-short": "10000 1 1.09500 1.10000 100000 1 0.01 0.01 100 -> 0.2",
    # loss per lot 0.5 x 100000 = 50000 JPY = 50000 / 150 = 333.33 USD; 100 / 333.33 = 0.3
    # exactly (100 x 150 / 50000): 1/150 is inexact, and must not make it 0.29.
    "usdjpy-quote-converted": "10000 1 150.000 149.500 100000 1/150 0.01 0.01 100 -> 0.3",
    # gold: 1 lot = 100 oz; 2000.00 - 1990.00 = 10 USD an oz; 10 x 100 = 1000 USD a lot;
    # 100 / 1000 = 0.1 lots.
    "xauusd-contract-100": "10000 1 2000.00 1990.00 100 1 0.01 0.01 50 -> 0.1",
    # EURGBP on a USD account, GBPUSD 1.25: 0.004 x 100000 = 400 GBP = 500 USD a lot;
    # 100 / 500 = 0.2 lots.
    "eurgbp-cross": "10000 1 0.85000 0.84600 100000 1.25 0.01 0.01 100 -> 0.2",
    # 12345 x 1% = 123.45 USD; 123.45 / 500 = 0.2469 -> rounded DOWN to 0.24 (never up).
    "rounded-down-to-step": "12345 1 1.10000 1.09500 100000 1 0.01 0.01 100 -> 0.24",
    # a broker stepping 0.1 lots: 0.2469 -> 0.2.
    "coarse-step": "12345 1 1.10000 1.09500 100000 1 0.1 0.1 100 -> 0.2",
    # 1000000 x 10% = 100000 USD; / 500 = 200 lots -> capped at the max lot 100.
    "capped-at-max-lot": "1000000 10 1.10000 1.09500 100000 1 0.01 0.01 100 -> 100",
}


def _number(text: str) -> D:
    top, _, bottom = text.partition("/")
    return D(top) / D(bottom) if bottom else D(top)


@pytest.mark.parametrize("case", RISK_CASES.values(), ids=RISK_CASES.keys())
def test_lots_for_risk(case: str) -> None:
    inputs, _, expected = case.partition(" -> ")
    assert lots_for_risk(*map(_number, inputs.split())) == D(expected)


@pytest.mark.parametrize(
    ("equity", "entry", "stop", "rate", "code"),
    [
        # 100 x 1% = 1 USD; / 500 = 0.002 lots -> 0.00 at a 0.01 step: under the 0.01 minimum.
        pytest.param("100", "1.10000", "1.09500", D(1), "below_minimum", id="below-min-lot"),
        pytest.param("10000", "1.10000", "1.10000", D(1), "invalid_stops", id="stop-at-entry"),
        pytest.param("10000", "1.10000", "1.09500", D(0), "no_price", id="no-conversion-rate"),
    ],
)
def test_lots_for_risk_refusals(equity: str, entry: str, stop: str, rate: D, code: str) -> None:
    with pytest.raises(Rejection) as caught:
        lots_for_risk(
            D(equity), D(1), D(entry), D(stop), D(100000), rate, D("0.01"), D("0.01"), D(100)
        )
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("contract", "pip", "rate", "lots", "value"),
    [
        # EURUSD: 100000 x 0.0001 x 1 = 10 USD a pip for one lot; 0.2 lots -> 2 USD.
        pytest.param("100000", "0.0001", D(1), "1", D("10"), id="eurusd-1-lot"),
        pytest.param("100000", "0.0001", D(1), "0.2", D("2"), id="eurusd-0.2-lot"),
        # USDJPY: 100000 x 0.01 = 1000 JPY a pip = 1000 / 150 = 6.67 USD a lot.
        pytest.param("100000", "0.01", ONE_150TH, "1", D(1000) / D(150), id="usdjpy"),
        # XAUUSD (2 digits, pip = point 0.01): 100 x 0.01 = 1 USD a lot.
        pytest.param("100", "0.01", D(1), "1", D("1"), id="xauusd"),
    ],
)
def test_pip_value(contract: str, pip: str, rate: D, lots: str, value: D) -> None:
    assert pip_value(D(contract), D(pip), rate, D(lots)) == value


def test_quote_to_account() -> None:
    prices = {"USDJPY": D("150"), "GBPUSD": D("1.25")}
    assert quote_to_account("USD", "USD", prices) == 1
    assert quote_to_account("JPY", "USD", prices) == ONE_150TH  # yen / (yen per dollar)
    assert quote_to_account("GBP", "USD", prices) == D("1.25")  # dollars per pound
    with pytest.raises(Rejection) as caught:
        quote_to_account("CHF", "USD", prices)
    assert caught.value.code == "no_price"
