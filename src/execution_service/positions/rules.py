"""What new prices do to an open position: pure, no I/O. `evaluate` judges one price,
`evaluate_path` every price a market went through since the last mark, in order.

Order of precedence on one price: stop loss, take profit, trailing stop, then partial take-profit
levels, then the break-even move. A close wins over an amendment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

from execution_service.decimals import HUNDRED, ONE, normalize
from execution_service.enums import CloseReason, Direction
from execution_service.market_data.sources import Move


@dataclass(frozen=True)
class Level:
    price: Decimal
    close_percent: Decimal
    done: bool = False


@dataclass(frozen=True)
class PositionView:
    direction: str  # "buy" (long) or "sell" (short)
    entry: Decimal
    quantity: Decimal
    initial_quantity: Decimal
    sl: Decimal | None = None
    tp: Decimal | None = None
    levels: tuple[Level, ...] = ()
    trailing_percent: Decimal | None = None
    best: Decimal | None = None
    break_even_rr: Decimal | None = None
    break_even_done: bool = False
    liquidation: Decimal | None = None
    initial_sl: Decimal | None = None  # the risk break-even is measured from
    break_even_offset: Decimal | None = None  # percent past the entry break-even moves to
    # The SL / TP rests at the venue at exactly this level (`orders.protection`): the venue
    # closes on it, the monitor does not (a moved level is emulated until the venue holds it).
    held_sl: bool = False
    held_tp: bool = False
    held_trailing: bool = False  # the venue trails it itself


@dataclass(frozen=True)
class Close:
    reason: CloseReason  # sl, tp, trailing_stop
    quantity: Decimal
    full: bool
    level: int | None = None  # the take-profit level this partial close fills


@dataclass(frozen=True)
class Decision:
    best: Decimal | None
    sl: Decimal | None
    break_even_done: bool
    close: Close | None = None


class Judged(Protocol):
    """The columns of a position the rules read (an `ExecutionPosition`, or a batch's values)."""

    @property
    def direction(self) -> str: ...
    @property
    def entry_price(self) -> Decimal: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def initial_quantity(self) -> Decimal: ...
    @property
    def sl_price(self) -> Decimal | None: ...
    @property
    def tp_price(self) -> Decimal | None: ...
    @property
    def take_profits(self) -> list[dict[str, Any]] | None: ...
    @property
    def trailing_stop_percent(self) -> Decimal | None: ...
    @property
    def best_price(self) -> Decimal | None: ...
    @property
    def break_even_trigger_rr(self) -> Decimal | None: ...
    @property
    def break_even_done(self) -> bool: ...
    @property
    def liquidation_price(self) -> Decimal | None: ...
    @property
    def initial_sl_price(self) -> Decimal | None: ...
    @property
    def break_even_offset_percent(self) -> Decimal | None: ...
    @property
    def held_sl_price(self) -> Decimal | None: ...
    @property
    def held_tp_price(self) -> Decimal | None: ...
    @property
    def held_trailing_percent(self) -> Decimal | None: ...


def view_of(p: Judged, venue_liquidates: bool = False) -> PositionView:
    """`venue_liquidates`: the venue holds the position and liquidates it itself (a real
    derivatives account); its liquidation price is shown, not acted on here."""
    levels = tuple(
        Level(Decimal(t["price"]), Decimal(t["close_percent"]), bool(t.get("done")))
        for t in p.take_profits or []
    )
    return PositionView(
        p.direction,
        p.entry_price,
        p.quantity,
        p.initial_quantity,
        p.sl_price,
        p.tp_price,
        levels,
        p.trailing_stop_percent,
        p.best_price,
        p.break_even_trigger_rr,
        p.break_even_done,
        None if venue_liquidates else p.liquidation_price,
        p.initial_sl_price,
        p.break_even_offset_percent,
        p.held_sl_price is not None and p.held_sl_price == p.sl_price,
        p.held_tp_price is not None and p.held_tp_price == p.tp_price,
        p.held_trailing_percent is not None and p.held_trailing_percent == p.trailing_stop_percent,
    )


def _reached(direction: str, price: Decimal, level: Decimal) -> bool:
    """A target in the position's favour (TP) is reached at or beyond it."""
    return price >= level if direction == Direction.buy else price <= level


def _hit(direction: str, price: Decimal, stop: Decimal) -> bool:
    """A stop against the position (SL, trailing) is hit at or through it."""
    return price <= stop if direction == Direction.buy else price >= stop


def trailing_level(direction: str, best: Decimal, percent: Decimal) -> Decimal:
    away = percent / HUNDRED
    return normalize(best * (ONE - away) if direction == Direction.buy else best * (ONE + away))


def _close(p: PositionView, price: Decimal, best: Decimal) -> Close | None:
    d = p.direction
    if p.liquidation is not None and _hit(d, price, p.liquidation):
        # The venue's liquidation comes before any stop of ours that the price went through.
        return Close(CloseReason.liquidation, p.quantity, True)
    if p.sl is not None and not p.held_sl and _hit(d, price, p.sl):
        return Close(CloseReason.sl, p.quantity, True)
    if p.tp is not None and not p.held_tp and _reached(d, price, p.tp):
        return Close(CloseReason.tp, p.quantity, True)
    if (
        p.trailing_percent is not None
        and not p.held_trailing
        and _hit(d, price, trailing_level(d, best, p.trailing_percent))
    ):
        return Close(CloseReason.trailing_stop, p.quantity, True)
    ladder = sum((lv.close_percent for lv in p.levels), Decimal(0))
    for i, level in enumerate(p.levels):
        if level.done or not _reached(d, price, level.price):
            continue
        later = sum((lv.close_percent for lv in p.levels[i + 1 :] if not lv.done), Decimal(0))
        quantity = normalize(p.initial_quantity * level.close_percent / HUNDRED)
        # The last level of a ladder of 100 % takes what is left; a ladder of less leaves the
        # rest running, for the SL and the trailing stop.
        if (later == 0 and ladder >= HUNDRED) or quantity >= p.quantity:
            return Close(CloseReason.tp, p.quantity, True, i)
        return Close(CloseReason.tp, quantity, False, i)
    return None


def evaluate(p: PositionView, price: Decimal) -> Decision:
    sign = ONE if p.direction == Direction.buy else -ONE
    best = p.best if p.best is not None else p.entry
    if (price - best) * sign > 0:
        best = price
    close = _close(p, price, best)
    if close is not None:
        return Decision(best, p.sl, p.break_even_done, close)
    sl, done = p.sl, p.break_even_done
    # Move the stop to the entry (plus the offset that pays the fees) once the open profit is
    # break_even_rr times the risk taken at the open.
    first_sl = p.initial_sl if p.initial_sl is not None else sl
    risk = (p.entry - first_sl) * sign if first_sl is not None else Decimal(0)
    rr = p.break_even_rr
    if rr is not None and not done and risk > 0 and (price - p.entry) * sign >= risk * rr:
        sl, done = break_even_level(p.direction, p.entry, p.break_even_offset), True
    return Decision(best, sl, done)


def break_even_level(direction: str, entry: Decimal, offset_percent: Decimal | None) -> Decimal:
    """Where break-even puts the stop: past the entry, on the profit side, by the offset."""
    if not offset_percent:
        return entry
    away = offset_percent / HUNDRED
    return normalize(entry * (ONE + away) if direction == Direction.buy else entry * (ONE - away))


def prices_of(direction: str, move: Move) -> tuple[Decimal, ...]:
    """The prices a move went through, in the order judged. A bar's order inside it is unknown:
    its extreme against the position comes first (when a bar spans both the SL and the TP, the
    SL is taken as hit first, the cautious reading), then the one in its favour, then its close."""
    if move.is_tick:
        return (move.close,)
    if direction == Direction.buy:
        return (move.low, move.high, move.close)
    return (move.high, move.low, move.close)


def evaluate_path(p: PositionView, moves: Sequence[Move]) -> Decision:
    """`evaluate` at every price of `moves` in order, carrying the high-water mark and the
    break-even move from one to the next; the first close ends it. `moves` is never empty."""
    decision = Decision(p.best, p.sl, p.break_even_done)
    for move in moves:
        for price in prices_of(p.direction, move):
            decision = evaluate(p, price)
            if decision.close is not None:
                return decision
            p = replace(
                p, best=decision.best, sl=decision.sl, break_even_done=decision.break_even_done
            )
    return decision
