"""A fan-out's paper accounts read in a few queries rather than a few per account."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import metrics
from execution_service.exchanges.base import BalanceEntry, Market, NoPrice, Ticker, Valuation
from execution_service.exchanges.paper.adapter import PaperTerms, paper_market
from execution_service.exchanges.paper.repository import PaperRepository


class PreloadedQuotes:
    """A paper account's balances and price as read for a whole fan-out in a few queries: what
    `PaperAdapter` would answer, without a query per connection."""

    def __init__(
        self,
        balances: dict[str, BalanceEntry],
        ticker: Ticker | None,
        terms: PaperTerms | None = None,
    ) -> None:
        self._balances = balances
        self._ticker = ticker
        self._terms = terms

    async def market(self, symbol: str) -> Market:
        return paper_market(symbol, self._terms)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        if self._ticker is None:
            # Counted as the adapter's bounded wrapper counts a failed call.
            metrics.EXCHANGE_ERRORS.labels(NoPrice.code, "fetch_ticker").inc()
            raise NoPrice(f"no price for {symbol} on the linked data connection")
        return self._ticker

    async def fetch_balance(self) -> dict[str, BalanceEntry]:
        return self._balances

    async def valuation(self, symbol: str) -> Valuation:
        return Valuation(paper_market(symbol).quote)


async def preload(
    session: AsyncSession, accounts: Sequence[tuple[int, int | None, PaperTerms]], symbol: str
) -> dict[int, PreloadedQuotes]:
    """Quotes for many paper accounts ((connection id, data connection id, its terms) each): their
    balances and the symbol's latest price on each data connection, in two queries."""
    repo = PaperRepository(session)
    balances = await repo.balances_of([conn_id for conn_id, _, _ in accounts])
    prices = await repo.latest_prices({dc for _, dc, _ in accounts}, symbol)
    tickers = {
        dc: None if row is None else Ticker(symbol, row.close, row.timestamp)
        for dc, row in prices.items()
    }
    return {
        conn_id: PreloadedQuotes(balances.get(conn_id, {}), tickers.get(dc), terms)
        for conn_id, dc, terms in accounts
    }
