"""Every closed vocabulary of the domain. Values are what the API and the database carry."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    service = "service"
    user = "user"


class ConnectionType(StrEnum):
    crypto = "crypto"
    fx = "fx"


class Adapter(StrEnum):
    paper = "paper"
    ccxt = "ccxt"
    mtapi = "mtapi"


class MarketType(StrEnum):
    spot = "spot"
    swap = "swap"


class ConnectionStatus(StrEnum):
    active = "active"
    inactive = "inactive"
    error = "error"


class DataSourceType(StrEnum):
    manual = "manual"  # prices pushed over the API
    ccxt = "ccxt"  # an exchange's public tickers, fetched by the service
    mtapi = "mtapi"  # FX/CFD quotes from an mtapi gateway, fetched with the account's login


class FeedMode(StrEnum):
    """How a fetching data connection gets its prices now."""

    streaming = "streaming"  # pushed by the venue (websocket), one worker process holding it
    polling = "polling"  # fetched over REST every poll (the stream is down, silent, or none)


class SizeMode(StrEnum):
    fixed_quantity = "fixed_quantity"
    fixed_notional = "fixed_notional"
    risk_percent = "risk_percent"


class Direction(StrEnum):
    buy = "buy"
    sell = "sell"

    @property
    def opposite(self) -> Direction:
        return Direction.sell if self is Direction.buy else Direction.buy


class OrderType(StrEnum):
    market = "market"
    limit = "limit"
    # Protective orders resting at the venue (`Purpose.protect`), never a signal's entry: `stop`
    # (the SL) fires a market order when the price crosses its level (`price`); `target` (the
    # TP) does the same in the position's favour (an OCO's limit leg rests at its price).
    stop = "stop"
    target = "target"
    # A trailing stop the venue trails itself: its callback percent is in the log's plan.
    trailing = "trailing"

    @property
    def is_trigger(self) -> bool:
        return self in (OrderType.stop, OrderType.target, OrderType.trailing)


class OrderStatus(StrEnum):
    pending = "pending"
    open = "open"
    partially_filled = "partially_filled"
    filled = "filled"
    cancelled = "cancelled"
    rejected = "rejected"
    # A follower's rules excluded the signal on this account: recorded, never sent.
    skipped = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in (
            OrderStatus.filled,
            OrderStatus.cancelled,
            OrderStatus.rejected,
            OrderStatus.skipped,
        )


class Purpose(StrEnum):
    entry = "entry"
    exit = "exit"
    # A position's SL or TP held at the venue (`orders.protection`): rests while the position is
    # open; its fill closes the position like an exit's.
    protect = "protect"


class Protection(StrEnum):
    """How a venue holds a position's SL and TP (`VenueCapabilities.protection`)."""

    emulated = "emulated"  # nothing rests there: the monitor closes on both
    trigger_orders = "trigger_orders"  # reduce-only stop-market and take-profit orders, apart
    oco = "oco"  # one OCO list: the SL leg a stop, the TP leg a limit; one fill expires the other


class PositionStatus(StrEnum):
    open = "open"
    closing = "closing"
    closed = "closed"


class CloseReason(StrEnum):
    sl = "sl"
    tp = "tp"
    trailing_stop = "trailing_stop"
    manual = "manual"
    signal = "signal"
    liquidation = "liquidation"
    external = "external"
    # Closed by a kill switch (close-all) or a drawdown stop-out.
    close_all = "close_all"


class EventType(StrEnum):
    """What the outbox reports to webhooks and the live stream."""

    order_filled = "order.filled"
    order_rejected = "order.rejected"
    position_opened = "position.opened"
    position_closed = "position.closed"
    # Its exits were refused too many times in a row: the monitor stops sending them.
    position_flagged = "position.flagged"
    connection_error = "connection.error"
    order_skipped = "order.skipped"
    # A drawdown stop-out, and a kill switch (close-all), each with its counts.
    connection_stopped_out = "connection.stopped_out"
    connection_closed_out = "connection.closed_out"
    # A venue answered 429 or 418: its (venue, egress) request budget pauses for every account.
    # Owned by no one: admin and service keys and platform webhooks hear it.
    venue_paused = "venue.paused"


class SmallTrade(StrEnum):
    """What a follower does with a trade under its minimum (the venue's, or its own)."""

    skip = "skip"
    raise_to_minimum = "raise_to_minimum"


class StopOutAction(StrEnum):
    """What a drawdown stop-out does to the connection."""

    close_only = "close_only"  # no new positions; what is open runs its course
    close_and_pause = "close_and_pause"  # close everything and stop trading


class DeliveryStatus(StrEnum):
    """One event's delivery to one webhook."""

    pending = "pending"  # due now or at `next_attempt_at`
    delivered = "delivered"
    failed = "failed"  # given up after the last retry
