"""FX sizing in lots: pure functions, no I/O.

A MetaTrader order is sized in lots; one lot is `contract_size` units of the base currency
(100 000 for a currency pair, 100 oz for gold). A price move is worth money in the symbol's
*quote* currency, so a loss is converted to the account currency with `quote_to_account`:
1 for EURUSD on a USD account, 1 / USDJPY for USDJPY on a USD account (a yen amount divided by
yen per dollar). Pip values come from the symbol's own contract size and pip size, never from a
hard-coded "$10 a pip", which is only true of xxxUSD pairs on a USD account.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from execution_service.decimals import HUNDRED, ONE
from execution_service.enums import SizeMode
from execution_service.signals.sizing import Rejection, SizeRule, size_quantity


def loss_per_lot(
    entry: Decimal, stop: Decimal, contract_size: Decimal, quote_to_account: Decimal
) -> Decimal:
    """What one lot loses, in the account currency, if the price goes from entry to stop."""
    return abs(entry - stop) * contract_size * quote_to_account


def lots_for_risk(
    equity: Decimal,
    risk_percent: Decimal,
    entry: Decimal,
    stop: Decimal,
    contract_size: Decimal,
    quote_to_account: Decimal,
    volume_step: Decimal | None,
    min_lot: Decimal | None,
    max_lot: Decimal | None,
) -> Decimal:
    """Lots that lose `risk_percent` of `equity` (account currency) if the stop is hit.

    Rounded DOWN to the volume step (risk is never exceeded), capped at the broker's max lot, and
    refused (`below_minimum`) when under its min lot: a smaller risk is not silently rounded up
    to the minimum, which would risk more than asked."""
    if contract_size <= 0:
        raise ValueError(f"contract size must be positive, got {contract_size}")
    if quote_to_account <= 0:
        raise Rejection("no_price", "no rate to convert the quote currency to the account's")
    lots = size_quantity(
        SizeRule(SizeMode.risk_percent, risk_percent),
        price=entry,
        stop_loss=stop,
        equity=equity,
        override=None,
        amount_step=volume_step,
        unit_value=contract_size * quote_to_account,
        max_amount=max_lot,
    )
    if lots <= 0 or (min_lot is not None and lots < min_lot):
        raise Rejection(
            "below_minimum",
            f"{lots} lots risks {equity * risk_percent / HUNDRED}: under the minimum {min_lot}",
        )
    return lots


def pip_value(
    contract_size: Decimal, pip_size: Decimal, quote_to_account: Decimal, lots: Decimal
) -> Decimal:
    """What one pip is worth, in the account currency, on `lots` lots."""
    return contract_size * pip_size * quote_to_account * lots


def quote_to_account(quote: str, account: str, prices: Mapping[str, Decimal]) -> Decimal:
    """Rate turning an amount in `quote` into `account`, from prices keyed by MetaTrader symbol
    names ("USDJPY": yen per dollar). Same currency: 1; account+quote pair listed: 1/price;
    quote+account pair listed: price; otherwise `no_price`."""
    if quote == account:
        return ONE
    direct = prices.get(f"{quote}{account}")
    if direct is not None and direct > 0:
        return direct
    inverse = prices.get(f"{account}{quote}")
    if inverse is not None and inverse > 0:
        return ONE / inverse
    raise Rejection("no_price", f"no {quote}{account} or {account}{quote} price to convert {quote}")
