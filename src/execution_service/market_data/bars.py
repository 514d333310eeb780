"""Timeframes and bars built from ticks (pure: no I/O).

A bar of timeframe `tf` covers [start, start + tf), its `timestamp` is the start (as exchanges
stamp candles), its open the first tick of the period and its close the last, high and low the
extremes. Periods are aligned to the Unix epoch, weeks to Monday 00:00 UTC (as Binance's and
MetaTrader's weekly candles). Months have no fixed length: they can be pushed, not built.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

TICK = "tick"  # the `timeframe` of a single price (close = the price, no open/high/low)

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 1970-01-01 was a Thursday: weekly periods start 4 days later, on Monday 1970-01-05.
_WEEK_OFFSET = 4 * 86400


def seconds(timeframe: str) -> int | None:
    """The length of a timeframe such as 5m or 1h in seconds; None for a tick or a month."""
    unit = _UNIT_SECONDS.get(timeframe[-1:])
    if unit is None or timeframe == TICK or not timeframe[:-1].isdigit():
        return None
    return int(timeframe[:-1]) * unit


def offset(timeframe: str) -> int:
    """Where periods of this timeframe start, in seconds after the epoch."""
    return _WEEK_OFFSET if timeframe.endswith("w") else 0


def period_start(at: datetime, timeframe: str) -> datetime:
    """The start of the period of `timeframe` that holds `at`."""
    length = seconds(timeframe)
    if length is None:
        raise ValueError(f"timeframe {timeframe!r} has no fixed length")
    shift = offset(timeframe)
    elapsed = (at - _EPOCH) // timedelta(microseconds=1) - shift * 1_000_000
    start = elapsed // (length * 1_000_000) * length + shift
    return _EPOCH + timedelta(seconds=start)


@dataclass(frozen=True)
class BuiltBar:
    symbol: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    ticks: int  # how many ticks it was built from


def build(ticks: Iterable[tuple[str, datetime, Decimal]], timeframe: str) -> list[BuiltBar]:
    """Bars of `timeframe` from (symbol, time, price) ticks given in time order per symbol;
    ordered by symbol, then time. Only periods with at least one tick have a bar."""
    bars: dict[tuple[str, datetime], list[Decimal]] = {}
    counts: dict[tuple[str, datetime], int] = {}
    for symbol, at, price in ticks:
        key = (symbol, period_start(at, timeframe))
        bar = bars.get(key)
        if bar is None:
            bars[key] = [price, price, price, price]  # open, high, low, close
            counts[key] = 1
            continue
        bar[1], bar[2], bar[3] = max(bar[1], price), min(bar[2], price), price
        counts[key] += 1
    out = []
    for symbol, start in sorted(bars):
        open_, high, low, close = bars[(symbol, start)]
        out.append(BuiltBar(symbol, start, open_, high, low, close, counts[(symbol, start)]))
    return out
