"""What a target's venue says before its entry is decided: the market's rules, the price, the
balances, and how the symbol is valued in the account's currency. The only I/O of a decision:
through the connection's adapter, or, for a simulated venue, from its state read in bulk for
the whole fan-out."""

from __future__ import annotations

from execution_service.context import AppContext
from execution_service.crypto import CredentialsError
from execution_service.exchanges.base import ExchangeAdapter, ExchangeError, NoPrice, Quotes
from execution_service.signals.decision import Quote, Target, price_of
from execution_service.signals.schemas import SignalCreate
from execution_service.signals.sizing import Rejection


async def quote(
    ctx: AppContext, body: SignalCreate, target: Target, simulated: Quotes | None
) -> tuple[Quote, ExchangeAdapter | None]:
    """The target's quote, and the adapter to send with (None for a simulated venue, whose
    orders go out in a batch). Raises `Rejection` with the venue's error code."""
    try:
        adapter: ExchangeAdapter | None
        if target.caps.simulated:
            assert simulated is not None
            adapter, source = None, simulated
        else:
            adapter = await ctx.adapters.for_connection(target.conn)
            source = adapter
        market = await source.market(body.symbol)
        price = price_of(body, None)
        if price is None:
            price = (await source.fetch_ticker(body.symbol)).price
        balances = await source.fetch_balance()
        valuation = await source.valuation(body.symbol)
    except CredentialsError as exc:
        raise Rejection("credentials_error", str(exc)) from None
    except NoPrice as exc:
        raise Rejection("no_price", exc.message) from None
    except ExchangeError as exc:
        raise Rejection(exc.code, exc.message) from None
    return Quote(market, price, balances, valuation), adapter
