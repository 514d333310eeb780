"""What each kind of adapter needs to be configured: its credential fields, whether it needs an
exchange id or a base URL, and whether it is simulated (a starting balance and fee settings
instead of credentials). The connections API validates against this, so it names no adapter."""

from __future__ import annotations

from dataclasses import dataclass

from execution_service.enums import Adapter, DataSourceType


@dataclass(frozen=True)
class AdapterKind:
    required_credentials: frozenset[str] = frozenset()
    optional_credentials: frozenset[str] = frozenset()
    needs_exchange: bool = False  # an exchange id (ccxt's)
    needs_base_url: bool = False  # the gateway's URL (mtapi)
    simulated: bool = False  # no credentials; `paper` settings instead
    egress: bool = False  # may go out by an operator's egress group (a proxy: ccxt)

    def check_credentials(self, given: set[str]) -> None:
        """Raises ValueError naming what is missing or not taken."""
        if self.simulated:
            if given:
                raise ValueError("a paper connection takes no credentials")
            return
        if missing := self.required_credentials - given:
            raise ValueError(f"credentials need {', '.join(sorted(missing))}")
        if unknown := given - self.required_credentials - self.optional_credentials:
            raise ValueError(f"credentials do not take {', '.join(sorted(unknown))}")


KINDS: dict[Adapter, AdapterKind] = {
    Adapter.ccxt: AdapterKind(
        frozenset({"api_key", "api_secret"}),
        frozenset({"passphrase", "uid"}),
        needs_exchange=True,
        egress=True,
    ),
    Adapter.mtapi: AdapterKind(
        frozenset({"user", "password", "host"}), frozenset({"port"}), needs_base_url=True
    ),
    Adapter.paper: AdapterKind(simulated=True),
}


@dataclass(frozen=True)
class DataSourceKind:
    """A data connection's kind: whether the service fetches its prices (else they are pushed
    over the API), and what it needs to reach its source (credentials, exchange id, base URL)."""

    fetches: bool = False
    access: AdapterKind = AdapterKind()
    # The adapter whose client reads its prices (what that venue can do is its capabilities).
    adapter: Adapter | None = None


DATA_KINDS: dict[DataSourceType, DataSourceKind] = {
    DataSourceType.manual: DataSourceKind(),
    # A venue's public tickers: an exchange id, no credentials.
    DataSourceType.ccxt: DataSourceKind(
        fetches=True, access=AdapterKind(needs_exchange=True), adapter=Adapter.ccxt
    ),
    # Quotes come through a MetaTrader account's gateway session: the login an mtapi execution
    # connection takes, and the gateway's URL.
    DataSourceType.mtapi: DataSourceKind(
        fetches=True, access=KINDS[Adapter.mtapi], adapter=Adapter.mtapi
    ),
}
