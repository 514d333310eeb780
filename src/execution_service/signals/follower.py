"""A follower's rules that decide, before any venue is asked, how an account takes a leader's
signal: the symbol it trades (map, allow and deny lists), the side (reverse), and whether the
leverage asked is within its limit. Pure, no I/O. The sizing rules (multiplier, risk cap, small
trades) are `sizing`'s; the close-only switch is the fan-out's (it still lets netting close).
"""

from __future__ import annotations

from dataclasses import dataclass

from execution_service.models import TradingPreset
from execution_service.signals.schemas import SignalCreate
from execution_service.signals.sizing import Skip


@dataclass(frozen=True)
class Followed:
    """The signal as this account takes it, or why it is skipped."""

    body: SignalCreate
    skip: Skip | None = None


def follow(body: SignalCreate, preset: TradingPreset | None) -> Followed:
    if preset is None:
        return Followed(body)
    symbol = (preset.symbol_map or {}).get(body.symbol, body.symbol)
    allowed, denied = preset.symbols_allowed, preset.symbols_denied or []
    if allowed is not None and symbol not in allowed and body.symbol not in allowed:
        return Followed(body, Skip("symbol_not_allowed", f"{symbol} is not in symbols_allowed"))
    if symbol in denied or body.symbol in denied:
        return Followed(body, Skip("symbol_denied", f"{symbol} is in symbols_denied"))
    asked = body.leverage if body.leverage is not None else preset.leverage
    if preset.max_leverage is not None and asked > preset.max_leverage:
        return Followed(
            body, Skip("max_leverage", f"leverage {asked} is over max {preset.max_leverage}")
        )
    changes: dict[str, object] = {}
    if symbol != body.symbol:
        changes["symbol"] = symbol
    if preset.reverse:
        changes.update(reversed_(body))
    return Followed(body.model_copy(update=changes) if changes else body)


def reversed_(body: SignalCreate) -> dict[str, object]:
    """The other side, with the leader's exits swapped: its take profit is the follower's stop,
    its stop the follower's take profit (a ladder's farthest level becomes the stop)."""
    stop = body.tp_price
    if stop is None and body.take_profits:
        stop = body.take_profits[-1].price
    return {
        "direction": body.direction.opposite,
        "sl_price": stop,
        "tp_price": body.sl_price,
        "take_profits": None,
    }


def variant_key(body: SignalCreate) -> tuple[object, ...]:
    """Targets that take the signal the same way are decided together (one symbol, one side)."""
    return (body.symbol, body.direction, body.sl_price, body.tp_price)
