"""Deciding one target's entry: pure, no I/O. Given what the database says about the account
(`Account`) and what its venue says (`Quote`), the order to send, or why none is sent.

Refusals are `Rejection`s with a stable code; a refused order keeps what was decided before the
refusal (its price, plan and size), which the `rejected` execution log shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from execution_service.decimals import ONE
from execution_service.enums import ConnectionStatus, Direction, MarketType, OrderType, SizeMode
from execution_service.exchanges.base import BalanceEntry, Market, Valuation
from execution_service.exchanges.capabilities import VenueCapabilities
from execution_service.models import ExecutionConnection, TradingPreset
from execution_service.signals.netting import Held, Netting
from execution_service.signals.schemas import SignalCreate
from execution_service.signals.sizing import (
    AccountState,
    Costs,
    Limits,
    MarketRules,
    Rejection,
    SizeRule,
    check_limits,
    check_order,
    check_stops,
    default_stop,
    size_quantity,
    small_trade,
)


@dataclass(frozen=True)
class Target:
    """One connection of the signal, with its preset and what its venue can do."""

    conn: ExecutionConnection
    preset: TradingPreset | None
    caps: VenueCapabilities


@dataclass(frozen=True)
class Account:
    """What the database says about a target account, read once per signal for all targets."""

    open_positions: int = 0
    open_for_symbol: int = 0
    # PnL realised today (UTC) by fills: entry fees, partial and whole exits; a loss is negative.
    realized_today: Decimal = Decimal(0)
    # Open positions in the signal's symbol the other way, oldest first (netting).
    opposite: tuple[Held, ...] = ()
    # The open positions' unrealised PnL at their last mark, and what they are worth there.
    unrealized: Decimal = Decimal(0)
    held_value: Decimal = Decimal(0)

    @property
    def today(self) -> Decimal:
        """The day's result as an equity-based daily-loss rule sees it: realised today plus
        what is open now."""
        return self.realized_today + self.unrealized


@dataclass(frozen=True)
class Quote:
    """What the venue says: the market's rules, the price, the balances and how a unit of the
    symbol is valued in the account's currency."""

    market: Market
    price: Decimal
    balances: dict[str, BalanceEntry]
    valuation: Valuation


@dataclass
class Order:
    """What has been decided so far (kept on the log even when refused)."""

    quantity: Decimal = Decimal(0)
    price: Decimal | None = None
    plan: dict[str, Any] | None = None
    equity: Decimal = Decimal(0)  # the account's, as sized against (the limits read it again)


@dataclass(frozen=True)
class Decision:
    order: Order = field(default_factory=Order)
    refusal: Rejection | None = None


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def precheck(body: SignalCreate, target: Target, netting: Netting) -> Rejection | None:
    """The refusals that need nothing from the venue."""
    conn = target.conn
    if not conn.is_active or conn.status != ConnectionStatus.active:
        return Rejection("connection_inactive", f"connection {conn.id} is {conn.status}")
    if netting.opens and target.preset is None and netting.quantity is None:
        return Rejection("no_preset", "the connection has no preset and the signal no quantity")
    return None


def may_reverse(target: Target) -> bool:
    """An opposite signal may open the other way once it has closed what is held: where the
    preset says so, on accounts that can hold either side (swap, or a broker's margin)."""
    preset = target.preset
    margin = target.conn.market_type == MarketType.swap or target.caps.positions_are_tickets
    return preset is not None and preset.reverse_on_opposite and margin


def price_of(body: SignalCreate, last: Decimal | None) -> Decimal | None:
    """The price the order is sized at: a limit order's own, else the venue's last price."""
    if body.order_type == OrderType.limit and body.entry_price is not None:
        return body.entry_price
    return last


def decide(
    body: SignalCreate,
    target: Target,
    quote: Quote,
    account: Account,
    quantity: Decimal | None = None,
) -> Decision:
    """`quantity`: what the entry trades when it is not sized (the signal's own, or what is left
    of it once netting has closed the other side)."""
    order = Order(price=body.entry_price)
    try:
        _decide(body, target, quote, account, order, quantity)
    except Rejection as refusal:
        return Decision(order, refusal)
    return Decision(order)


def _decide(
    body: SignalCreate,
    target: Target,
    quote: Quote,
    account: Account,
    order: Order,
    quantity: Decimal | None,
) -> None:
    preset = target.preset
    direction = Direction(body.direction)
    price = order.price = quote.price
    sl, tp = _stops(body, preset, direction, price)
    order.plan = {
        "sl_price": _str(sl),
        "tp_price": _str(tp),
        "take_profits": body.plan_take_profits(),
        "trailing_stop_percent": _str(preset.trailing_stop_percent if preset else None),
        "break_even_trigger_rr": _str(preset.break_even_trigger_rr if preset else None),
        "break_even_offset_percent": _str(preset.break_even_offset_percent if preset else None),
    }
    if body.entry_price is None:  # the entry is known only now: stops may already be crossed
        check_stops(direction, price, sl, tp)
    rule = _rule(preset)
    if rule.mode is SizeMode.risk_percent and sl is None and quantity is None:
        raise Rejection("missing_stop_loss", "risk_percent sizing needs a stop loss")
    market, value = quote.market, quote.valuation
    if value.contract_size is not None:
        order.plan["contract_size"] = _str(value.contract_size)
    equity, free, leverage = _funds(target, quote, direction, account, body.leverage)
    order.equity = equity
    if not target.caps.margin_checked_by_venue:  # a broker's leverage is its own
        order.plan["leverage"] = _str(leverage)
    if market.maintenance_margin_rate is not None and target.conn.market_type != MarketType.spot:
        order.plan["maintenance_margin_rate"] = _str(market.maintenance_margin_rate)
    costs = _costs(market, body)
    order.quantity = size_quantity(
        rule,
        price=price,
        stop_loss=sl,
        equity=equity,
        override=quantity,
        amount_step=market.amount_step,
        unit_value=value.unit_value,
        max_amount=market.max_amount,
        direction=direction,
        costs=costs,
    )
    limits = _limits(preset, leverage)
    state = AccountState(
        account.open_positions, account.open_for_symbol, account.today, equity, free
    )
    fill = costs.entry_fill(direction, price)
    if preset is not None:
        # A unit of quantity is worth its price times what it stands for (a contract's size).
        order.quantity = _small(order.quantity, fill * value.unit_value, market, preset)
    rules = MarketRules(market.min_amount, market.min_cost, value.unit_value)
    check_order(limits, state, rules, order.quantity, fill, costs.fee_rate)


def _rule(preset: TradingPreset | None) -> SizeRule:
    if preset is None:
        return SizeRule(None, None)
    return SizeRule(
        SizeMode(preset.position_size_mode),
        preset.position_size_value,
        preset.max_position_notional,
        preset.multiplier,
        preset.max_risk_percent,
    )


def _small(quantity: Decimal, fill: Decimal, market: Market, preset: TradingPreset) -> Decimal:
    """A follower's small trade: skipped or raised to the minimum (`sizing.small_trade`)."""
    return small_trade(
        quantity,
        fill,
        min_amount=market.min_amount,
        min_cost=market.min_cost,
        min_trade_notional=preset.min_trade_notional,
        action=preset.small_trades,
        amount_step=market.amount_step,
    )


def _costs(market: Market, body: SignalCreate) -> Costs:
    """The venue's taker fee and expected slippage; a limit entry fills at its price."""
    slippage = market.slippage or Decimal(0)
    return Costs(
        market.taker_fee or Decimal(0),
        slippage if body.order_type == OrderType.market else Decimal(0),
        slippage,
    )


def _limits(preset: TradingPreset | None, leverage: Decimal) -> Limits:
    return Limits(
        preset.max_positions if preset else None,
        preset.max_positions_per_symbol if preset else None,
        preset.max_daily_loss_percent if preset else None,
        leverage,
    )


def has_limits(preset: TradingPreset | None) -> bool:
    """Whether the preset limits positions or the day's loss (what `recheck` checks)."""
    return preset is not None and (
        preset.max_positions is not None
        or preset.max_positions_per_symbol is not None
        or preset.max_daily_loss_percent is not None
    )


def recheck(target: Target, account: Account, equity: Decimal) -> Rejection | None:
    """The account's limits once more, on counts read under the account's lock just before the
    order is recorded: of two signals decided at the same moment, the second sees the first's
    pending entry."""
    state = AccountState(
        account.open_positions, account.open_for_symbol, account.today, equity, ONE
    )
    try:
        check_limits(_limits(target.preset, ONE), state)
    except Rejection as refusal:
        return refusal
    return None


def _stops(
    body: SignalCreate, preset: TradingPreset | None, direction: Direction, price: Decimal
) -> tuple[Decimal | None, Decimal | None]:
    """The signal's SL and TP, else the preset's defaults around `price` (no default TP where
    the signal has a take-profit ladder)."""
    sl = body.sl_price or default_stop(
        direction, price, preset.default_sl_percent if preset else None, take_profit=False
    )
    tp = body.tp_price
    if tp is None and not body.take_profits:
        tp = default_stop(
            direction, price, preset.default_tp_percent if preset else None, take_profit=True
        )
    return sl, tp


def equity_of(target: Target, quote: Quote, account: Account) -> Decimal:
    """What the account is worth in its currency: its cash, plus what its open positions add.
    On a real spot account the coins bought are no longer in the quote balance: they add their
    value at the last mark. Elsewhere (margin, derivatives, paper, a broker) the cash still
    counts what the positions cost or posted: they add their unrealised PnL."""
    funds = quote.balances.get(quote.valuation.currency)
    cash = funds.total if funds else Decimal(0)
    coins = target.caps.holds_coins(target.conn.market_type)
    return cash + (account.held_value if coins else account.unrealized)


def leverage_of(asked: Decimal | None, preset: TradingPreset | None) -> Decimal:
    """The signal's leverage (a leader's) where it says, else the preset's."""
    if asked is not None:
        return asked
    return preset.leverage if preset else Decimal(1)


def _funds(
    target: Target,
    quote: Quote,
    direction: Direction,
    account: Account,
    body_leverage: Decimal | None,
) -> tuple[Decimal, Decimal, Decimal]:
    """(equity, free, leverage) in the account's currency, as the order may use them."""
    funds = quote.balances.get(quote.valuation.currency)
    free = funds.free if funds else Decimal(0)
    equity = equity_of(target, quote, account)
    leverage = leverage_of(body_leverage, target.preset)
    if target.caps.margin_checked_by_venue:
        # The broker checks margin itself (its refusal is `insufficient_funds`): its leverage
        # and margin rules are not ours to guess.
        free = Decimal("Infinity")
    elif target.conn.market_type == MarketType.spot:
        # A spot account (paper too) borrows nothing: a buy spends quote, a sell the base held.
        leverage = Decimal(1)
        if direction is Direction.sell:
            base = quote.balances.get(quote.market.base)
            free = (base.free if base else Decimal(0)) * quote.price
    return equity, free, leverage
