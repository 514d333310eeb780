"""Data connections (manual, ccxt, mtapi): create with encrypted credentials, read with their
health, test; market data: ingest, latest price, history (stored, or bars built from ticks).
Venue I/O always happens outside a database transaction."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from execution_service import metrics
from execution_service.context import AppContext
from execution_service.crypto import CredentialsError, KeyRing, owner_aad
from execution_service.db import utcnow
from execution_service.enums import Adapter, DataSourceType
from execution_service.errors import Conflict, NotFound, Unprocessable
from execution_service.exchanges.base import ExchangeError
from execution_service.exchanges.catalog import known_exchange, venue_hosts
from execution_service.exchanges.kinds import DATA_KINDS
from execution_service.market_data import bars, feeds
from execution_service.market_data.bars import TICK
from execution_service.market_data.repository import (
    BuiltBarsRepository,
    DataConnectionRepository,
    LatestRepository,
    MarketDataRepository,
)
from execution_service.market_data.schemas import (
    DataConnectionCreate,
    DataConnectionRead,
    DataConnectionTestResult,
    DataConnectionUpdate,
    MarketDataIngest,
    MarketDataPage,
    MarketDataRow,
)
from execution_service.market_data.store import Point, store
from execution_service.models import DataConnection, MarketDataLatest
from execution_service.outbound.checks import check_base_url
from execution_service.principal import Principal
from execution_service.settings import Settings

# PATCHing these gives a fetching connection a new client (and a new login to check).
_ENDPOINT = frozenset({"exchange", "sandbox", "api_base_url", "market_type"})


def api_key_hint(credentials: dict[str, str]) -> str | None:
    """Last four characters of the login, only when that reveals little (as for connections)."""
    public = credentials.get("user") or credentials.get("api_key") or ""
    return public[-4:] if len(public) >= 12 else None


def _encrypt(keyring: KeyRing, row: DataConnection, credentials: dict[str, str]) -> None:
    token = keyring.encrypt(credentials, owner_aad(row.user_id, row.admin_id))
    row.credentials_encrypted, row.credentials_key_id = token.token, token.key_id
    row.api_key_hint = api_key_hint(credentials)


def _check(row: DataConnection, settings: Settings) -> None:
    """What only the whole row can say: the exchange is one ccxt knows, and a fetching
    connection's timeframes can be built from the ticks it keeps."""
    kind = DATA_KINDS[row.type]
    if kind.access.needs_exchange and not row.exchange:
        raise Unprocessable(f"a {row.type} data connection needs an exchange id")
    if kind.access.needs_exchange and not known_exchange("ccxt", row.exchange):
        raise Unprocessable(f"exchange {row.exchange!r} is not supported", code="unknown_exchange")
    if not kind.fetches:
        return
    keep = settings.market_data_tick_retention_hours * 3600
    for setting in row.timeframes or []:
        length = bars.seconds(setting["timeframe"])
        if length is None or (keep and length > keep):
            raise Unprocessable(
                f"timeframe {setting['timeframe']} cannot be built from the ticks kept "
                f"(EXEC_MARKET_DATA_TICK_RETENTION_HOURS={settings.market_data_tick_retention_hours:g})",
                code="timeframe_not_buildable",
            )


def read(
    row: DataConnection, settings: Settings, now: datetime | None = None
) -> DataConnectionRead:
    out = DataConnectionRead.model_validate(row)
    now = now or utcnow()
    out.stale = feeds.is_stale(row, now, settings.market_data_stale_seconds)
    out.mode = feeds.mode_of(row, now)
    return out


async def _check_url(row: DataConnection, ctx: AppContext) -> None:
    """The outbound policy on a fetching connection's URL (a ccxt one stays on its venue)."""
    adapter = Adapter.ccxt if row.type == DataSourceType.ccxt else Adapter.mtapi
    hosts = venue_hosts(adapter, row.exchange)
    await check_base_url(row.api_base_url, ctx.settings.outbound, hosts)


async def create_data_connection(
    session: AsyncSession, ctx: AppContext, principal: Principal, body: DataConnectionCreate
) -> DataConnection:
    user_id, admin_id = principal.owner_for_create(body.user_id, body.admin_id)
    fields = body.model_dump(exclude={"user_id", "admin_id", "credentials"}, exclude_none=True)
    fields["api_base_url"] = str(body.api_base_url) if body.api_base_url else None
    row = DataConnection(**fields, user_id=user_id, admin_id=admin_id, consecutive_failures=0)
    _check(row, ctx.settings)
    await _check_url(row, ctx)
    if body.credentials:
        _encrypt(ctx.keyring, row, {k: v.get_secret_value() for k, v in body.credentials.items()})
    session.add(row)
    await session.commit()
    return row


async def get_data_connection(
    session: AsyncSession, principal: Principal, data_connection_id: int
) -> DataConnection:
    row = await DataConnectionRepository(session).get(principal, data_connection_id)
    if row is None:
        raise NotFound(f"data connection {data_connection_id} not found")
    return row


async def list_data_connections(
    session: AsyncSession, principal: Principal, limit: int, offset: int
) -> tuple[Sequence[DataConnection], int]:
    return await DataConnectionRepository(session).list(principal, limit, offset)


async def update_data_connection(
    session: AsyncSession,
    ctx: AppContext,
    principal: Principal,
    data_connection_id: int,
    body: DataConnectionUpdate,
) -> DataConnection:
    row = await get_data_connection(session, principal, data_connection_id)
    changes = body.model_dump(exclude_unset=True, exclude={"credentials"})
    for required in ("name", "sandbox", "market_type", "is_active"):
        if required in changes and changes[required] is None:
            raise Unprocessable(f"{required} cannot be null")
    if "api_base_url" in changes and changes["api_base_url"] is not None:
        changes["api_base_url"] = str(changes["api_base_url"])
    for field, value in changes.items():
        setattr(row, field, value)
    if body.credentials is not None:
        try:
            DATA_KINDS[row.type].access.check_credentials(set(body.credentials))
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        _encrypt(ctx.keyring, row, {k: v.get_secret_value() for k, v in body.credentials.items()})
    if DATA_KINDS[row.type].access.needs_base_url and not row.api_base_url:
        raise Unprocessable(f"a {row.type} data connection needs the gateway's api_base_url")
    _check(row, ctx.settings)
    if "api_base_url" in changes:
        await _check_url(row, ctx)
    row.next_fetch_at = None  # polled at the next feed tick with what changed
    await session.commit()
    if body.credentials is not None or _ENDPOINT & changes.keys():
        await ctx.adapters.evict_feed(row.id)
    return row


async def delete_data_connection(
    session: AsyncSession, ctx: AppContext, principal: Principal, data_connection_id: int
) -> None:
    row = await get_data_connection(session, principal, data_connection_id)
    if await DataConnectionRepository(session).is_referenced(data_connection_id):
        raise Conflict(
            f"data connection {data_connection_id} is used by a connection: unlink it first",
            code="data_connection_in_use",
        )
    await session.delete(row)
    await session.commit()
    await ctx.adapters.evict_feed(data_connection_id)


async def test_data_connection(
    session: AsyncSession, ctx: AppContext, principal: Principal, data_connection_id: int
) -> DataConnectionTestResult:
    """Reach the source now (one quote of its first symbol, else its markets) and record the
    outcome in the health fields. A manual connection has nothing to reach: it passes."""
    row = await get_data_connection(session, principal, data_connection_id)
    await session.commit()  # no transaction open while the venue answers
    started = time.perf_counter()
    error = None
    if DATA_KINDS[row.type].fetches:
        try:
            adapter = await ctx.adapters.feed(row)
            if row.symbols:
                await adapter.fetch_ticker(row.symbols[0])
            else:
                await adapter.load_markets()
        except CredentialsError as exc:
            error = f"credentials: {exc}"
        except ExchangeError as exc:
            error = f"{exc.code}: {exc.message}"
    latency = int((time.perf_counter() - started) * 1000)
    row = await get_data_connection(session, principal, data_connection_id)
    row.last_tested_at = utcnow()
    row.last_error = error
    row.consecutive_failures = 0 if error is None else (row.consecutive_failures or 0) + 1
    await session.commit()
    return DataConnectionTestResult(ok=error is None, latency_ms=latency, error=error)


async def reencrypt_credentials(
    session: AsyncSession, ring: KeyRing, batch: int
) -> tuple[int, list[str]]:
    """For `rotate-keys`: every data connection's login under the primary key, a batch per
    transaction. Returns (done, failures)."""
    repo = DataConnectionRepository(session)
    done, failures, last_id = 0, [], 0
    while rows := await repo.with_credentials_after(last_id, batch):
        for row in rows:
            last_id = row.id
            aad = owner_aad(row.user_id, row.admin_id)
            try:
                plain = ring.decrypt(row.credentials_encrypted or "", aad)
            except CredentialsError as exc:
                failures.append(f"data connection {row.id}: {exc}")
                continue
            token = ring.encrypt(plain, aad)
            row.credentials_encrypted, row.credentials_key_id = token.token, token.key_id
            done += 1
        await session.commit()
    return done, failures


# --- market data -------------------------------------------------------------------------------


async def ingest(
    session: AsyncSession, principal: Principal, data_connection_id: int, body: MarketDataIngest
) -> int:
    await get_data_connection(session, principal, data_connection_id)
    now = utcnow()
    points = [Point.tick(p.symbol, p.timestamp or now, p.price) for p in body.prices]
    points += [
        Point(b.symbol, b.timeframe, b.timestamp, b.close, b.open, b.high, b.low, b.volume)
        for b in body.bars
    ]
    stored = await store(session, data_connection_id, points, now)
    await session.commit()
    metrics.MARKET_DATA_POINTS.labels("pushed").inc(stored)
    return stored


async def latest_price(
    session: AsyncSession, principal: Principal, data_connection_id: int, symbol: str
) -> MarketDataLatest:
    await get_data_connection(session, principal, data_connection_id)
    row = await LatestRepository(session).get(data_connection_id, symbol)
    if row is None:
        raise NotFound(
            f"no price for {symbol} on data connection {data_connection_id}", code="no_price"
        )
    return row


async def history(
    session: AsyncSession,
    principal: Principal,
    data_connection_id: int,
    query: dict[str, Any],
    limit: int,
    offset: int,
) -> MarketDataPage:
    """One symbol's stored ticks or bars in [since, until), oldest first; bars of a timeframe
    that has none stored for the symbol are built from its stored ticks (`built`)."""
    await get_data_connection(session, principal, data_connection_id)
    symbol, timeframe = query["symbol"], query["timeframe"]
    since, until = query.get("since"), query.get("until")
    if since is not None and until is not None and until <= since:
        raise Unprocessable("until must be after since", code="invalid_range")
    points = MarketDataRepository(session)
    if timeframe == TICK or await points.has(data_connection_id, symbol, timeframe):
        rows, total = await points.page(
            data_connection_id, symbol, timeframe, since, until, limit, offset
        )
        items = [MarketDataRow.model_validate(r) for r in rows]
        built = False
    else:
        if bars.seconds(timeframe) is None:
            raise Unprocessable(
                f"no {timeframe} bars are stored, and months cannot be built from ticks",
                code="timeframe_not_buildable",
            )
        made, total = await BuiltBarsRepository(session).build(
            data_connection_id, [symbol], timeframe, since, until, limit, offset
        )
        items = [MarketDataRow.model_validate(b, from_attributes=True) for b in made]
        built = True
    return MarketDataPage(
        symbol=symbol,
        timeframe=timeframe,
        built=built,
        items=items,
        total=total,
        limit=limit,
        offset=offset,
    )
