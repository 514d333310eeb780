"""The errors every adapter may raise: their library's exceptions translated at the boundary
(freqtrade's pattern), each with the stable `code` recorded on execution logs."""

from __future__ import annotations


class ExchangeError(Exception):
    """Base of every adapter error. `code` is the stable error code recorded on execution logs."""

    code = "exchange_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TemporaryError(ExchangeError):
    """Network, timeout, rate limit, exchange down: the outcome of a write is unknown."""

    code = "exchange_unavailable"


class AuthFailed(ExchangeError):
    code = "auth_failed"


class AddressRefused(ExchangeError):
    """The outbound policy refused the venue's address (private, rebound, or not a venue host):
    nothing was sent."""

    code = "url_refused"


class ExchangeBusy(ExchangeError):
    """The order waited too long for a free slot toward this account and was NOT sent: safe to
    refuse outright (no reconciliation needed)."""

    code = "exchange_busy"


class InsufficientFunds(ExchangeError):
    code = "insufficient_funds"


class InvalidOrder(ExchangeError):
    code = "invalid_order"


class OrderNotFound(ExchangeError):
    code = "order_not_found"


class NotSupported(ExchangeError):
    """The venue cannot do this (its `VenueCapabilities` say so): nothing was sent."""

    code = "not_supported"


class NoPrice(ExchangeError):
    """No price is known for the symbol (paper accounts without market data)."""

    code = "no_price"


class UnknownSymbol(InvalidOrder):
    """The venue has no market for the symbol in the connection's market type (a swap account
    maps `BTC/USDT` to its linear perpetual `BTC/USDT:USDT`; nothing else is guessed)."""

    code = "unknown_symbol"


class InverseNotSupported(NotSupported):
    """An inverse (coin-margined) contract: sized, margined and settled in the base asset, which
    this service does not book. Refused before anything is sent."""

    code = "inverse_not_supported"


class LeverageNotSet(ExchangeError):
    """The venue refused (or did not confirm) the leverage or margin mode asked for the symbol:
    the order that needed it was not sent."""

    code = "leverage_not_set"
