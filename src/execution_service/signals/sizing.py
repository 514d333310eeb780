"""Position sizing and pre-trade checks: pure functions, no I/O, every refusal a stable code."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from execution_service.decimals import HUNDRED, ONE, ZERO, normalize, round_down, round_up
from execution_service.enums import Direction, SizeMode, SmallTrade

_PLACES = Decimal("1e-18")


class Rejection(Exception):
    """A pre-trade refusal: recorded as a `rejected` execution log with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Skip(Rejection):
    """A follower's rules exclude the trade on this account: recorded `skipped`, not refused."""


@dataclass(frozen=True)
class Costs:
    """What a trade pays beyond its price move, as fractions: the taker fee on each fill, and
    the slippage expected on a market entry and on the market exit a stop sends."""

    fee_rate: Decimal = ZERO
    entry_slippage: Decimal = ZERO
    exit_slippage: Decimal = ZERO

    def entry_fill(self, direction: Direction, price: Decimal) -> Decimal:
        """Where the entry is expected to fill: moved against the taker by the slippage."""
        away = self.entry_slippage
        return price * (ONE + away) if direction is Direction.buy else price * (ONE - away)

    def exit_fill(self, direction: Direction, stop: Decimal) -> Decimal:
        away = self.exit_slippage
        return stop * (ONE - away) if direction is Direction.buy else stop * (ONE + away)

    def loss_at_stop(self, direction: Direction, price: Decimal, stop: Decimal) -> Decimal:
        """What one unit loses if stopped: the move between the two expected fills, plus the
        fee on each of them."""
        entry, exit_ = self.entry_fill(direction, price), self.exit_fill(direction, stop)
        return abs(entry - exit_) + self.fee_rate * (entry + exit_)


@dataclass(frozen=True)
class SizeRule:
    mode: SizeMode | None
    value: Decimal | None
    max_position_notional: Decimal | None = None
    # A follower's: times the computed size (or the signal's quantity), and the most of equity
    # one trade may lose at its SL (the size is cut to fit).
    multiplier: Decimal | None = None
    max_risk_percent: Decimal | None = None


def default_stop(
    direction: Direction, price: Decimal, percent: Decimal | None, *, take_profit: bool
) -> Decimal | None:
    """A preset's default SL/TP percent turned into a price on the right side of `price`."""
    if percent is None:
        return None
    away = percent / HUNDRED
    below = (direction is Direction.buy) != take_profit
    return price * (ONE - away) if below else price * (ONE + away)


def check_stops(
    direction: Direction, price: Decimal, sl: Decimal | None, tp: Decimal | None
) -> None:
    """SL below and TP above a buy's price (mirrored for a sell); otherwise `invalid_stops`."""
    sign = ONE if direction is Direction.buy else -ONE
    if sl is not None and (price - sl) * sign <= 0:
        raise Rejection("invalid_stops", f"stop loss {sl} is already crossed at {price}")
    if tp is not None and (tp - price) * sign <= 0:
        raise Rejection("invalid_stops", f"take profit {tp} is already crossed at {price}")


def size_quantity(
    rule: SizeRule,
    *,
    price: Decimal,
    stop_loss: Decimal | None,
    equity: Decimal,
    override: Decimal | None,
    amount_step: Decimal | None,
    unit_value: Decimal = ONE,
    max_amount: Decimal | None = None,
    direction: Direction = Direction.buy,
    costs: Costs = Costs(),
) -> Decimal:
    """Quantity for one order, rounded down to the market's step. A signal's own quantity
    overrides the preset's sizing but not its notional cap.

    `unit_value` is what one unit of quantity is worth per unit of price, in the account's
    currency: 1 for a crypto amount; a lot's contract size times the quote-to-account rate for
    MetaTrader (so the same rules size lots). `max_amount` caps it (a broker's max lot).

    `risk_percent` counts `costs`: a stop-out loses the percent asked, fees and slippage
    included, give or take one amount step. The notional cap holds at the expected fill price."""
    if price <= 0 or unit_value <= 0:
        raise Rejection("no_price", "no usable price to size the order")
    if override is not None:
        quantity = override
    elif rule.mode is None or rule.value is None:
        raise Rejection("no_preset", "the connection has no preset and the signal no quantity")
    elif rule.mode is SizeMode.fixed_quantity:
        quantity = rule.value
    elif rule.mode is SizeMode.fixed_notional:
        quantity = rule.value / (price * unit_value)
    else:
        if stop_loss is None:
            raise Rejection("missing_stop_loss", "risk_percent sizing needs a stop loss")
        if stop_loss == price:
            raise Rejection("invalid_stops", "the stop loss equals the entry price")
        risk_per_unit = costs.loss_at_stop(direction, price, stop_loss) * unit_value
        quantity = equity * rule.value / HUNDRED / risk_per_unit
    if rule.multiplier is not None:
        quantity *= rule.multiplier
    if rule.max_risk_percent is not None:
        quantity = _within_risk(
            rule.max_risk_percent, quantity, direction, price, stop_loss, equity, costs, unit_value
        )
    cap = rule.max_position_notional
    fill = costs.entry_fill(direction, price)
    if cap is not None and quantity * fill * unit_value > cap:
        quantity = cap / (fill * unit_value)
    if max_amount is not None and quantity > max_amount:
        quantity = max_amount
    # Inexact divisions (1/150) land a hair under a step; 18 places is finer than any market.
    return normalize(round_down(quantity.quantize(_PLACES, rounding=ROUND_HALF_EVEN), amount_step))


def _within_risk(
    percent: Decimal,
    quantity: Decimal,
    direction: Direction,
    price: Decimal,
    stop_loss: Decimal | None,
    equity: Decimal,
    costs: Costs,
    unit_value: Decimal,
) -> Decimal:
    """A follower's risk cap: what the trade may lose at its SL, fees and slippage included.
    Without an SL the risk is unbounded, and the trade is skipped."""
    if stop_loss is None or stop_loss == price:
        raise Skip("max_risk_percent", "max_risk_percent needs a stop loss to measure the risk")
    most = (
        equity * percent / HUNDRED / (costs.loss_at_stop(direction, price, stop_loss) * unit_value)
    )
    return min(quantity, most)


def small_trade(
    quantity: Decimal,
    fill: Decimal,
    *,
    min_amount: Decimal | None,
    min_cost: Decimal | None,
    min_trade_notional: Decimal | None,
    action: SmallTrade | None,
    amount_step: Decimal | None,
) -> Decimal:
    """A trade under the minimum (the venue's amount or notional, or the follower's own
    notional): skipped, or raised to the minimum, as the follower said. Unset: the venue's
    minimum is a refusal (`check_order`), the follower's own minimum a skip."""
    notional = max(min_cost or ZERO, min_trade_notional or ZERO)
    least = max(min_amount or ZERO, notional / fill if fill > 0 else ZERO)
    if quantity >= least and quantity > 0:
        return quantity
    own = min_trade_notional is not None and quantity * fill < min_trade_notional
    if action is SmallTrade.raise_to_minimum:
        return round_up(least, amount_step)
    if action is SmallTrade.skip or own:
        raise Skip(
            "below_minimum",
            f"quantity {normalize(quantity)} is under the minimum {normalize(least)}",
        )
    return quantity


@dataclass(frozen=True)
class Limits:
    max_positions: int | None = None
    max_positions_per_symbol: int | None = None
    max_daily_loss_percent: Decimal | None = None
    leverage: Decimal = ONE


@dataclass(frozen=True)
class AccountState:
    open_positions: int
    open_for_symbol: int
    # The day's result (UTC), equity-based: realised today plus the open positions'
    # unrealised PnL; a loss is negative.
    realized_today: Decimal
    equity: Decimal
    free: Decimal


@dataclass(frozen=True)
class MarketRules:
    min_amount: Decimal | None = None
    min_cost: Decimal | None = None
    # What one unit of quantity is worth per unit of price (a contract's size: OKX BTC-USDT-SWAP
    # counts contracts of 0.01 BTC), so a notional is quantity x price x this.
    unit_value: Decimal = ONE


def check_limits(limits: Limits, account: AccountState) -> None:
    """The account's limits: positions held (and entries that may still open one), per symbol,
    and today's realised loss. Checked again under the account's lock before the order is
    recorded, so concurrent signals cannot both pass them."""
    if limits.max_positions is not None and account.open_positions >= limits.max_positions:
        raise Rejection(
            "max_positions", f"{account.open_positions} open, limit {limits.max_positions}"
        )
    per_symbol = limits.max_positions_per_symbol
    if per_symbol is not None and account.open_for_symbol >= per_symbol:
        raise Rejection(
            "max_positions_per_symbol", f"{account.open_for_symbol} open, limit {per_symbol}"
        )
    loss = -account.realized_today
    if limits.max_daily_loss_percent is not None and loss > 0:
        day_start = account.equity + loss  # equity before today's results
        if day_start > 0 and loss >= day_start * limits.max_daily_loss_percent / HUNDRED:
            raise Rejection(
                "daily_loss_limit",
                f"today's loss {loss} reached {limits.max_daily_loss_percent}% of {day_start}",
            )


def check_order(
    limits: Limits,
    account: AccountState,
    market: MarketRules,
    quantity: Decimal,
    price: Decimal,
    fee_rate: Decimal = ZERO,
) -> None:
    """Every pre-trade check, in the order a trader would want the first refusal reported.
    `price` is where the order is expected to fill; the funds must pay its margin and its fee."""
    check_limits(limits, account)
    minimum = market.min_amount or ZERO
    if quantity <= 0 or quantity < minimum:
        raise Rejection("below_minimum", f"quantity {quantity} is below the minimum {minimum}")
    cost = quantity * price * market.unit_value
    if market.min_cost is not None and cost < market.min_cost:
        raise Rejection("below_minimum", f"notional {cost} is below the minimum {market.min_cost}")
    needed = cost / limits.leverage + cost * fee_rate
    if needed > account.free:
        raise Rejection(
            "insufficient_funds",
            f"order cost {normalize(cost)} at leverage {limits.leverage} plus its fee needs "
            f"{normalize(needed)}, {account.free} available",
        )
