"""SQL of market data. `DataConnectionRepository` reads and claims data connections;
`points.MarketDataRepository` writes and reads `market_data` (ticks and bars, history, pruning);
`latest.LatestRepository` keeps the latest point per (data connection, symbol); `built` builds
bars from stored ticks (in SQL on PostgreSQL, in Python on SQLite, whose money is text)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from execution_service.enums import DataSourceType, FeedMode, PositionStatus
from execution_service.market_data.repository.built import BuiltBarsRepository
from execution_service.market_data.repository.latest import LatestRepository
from execution_service.market_data.repository.points import MarketDataRepository
from execution_service.models import DataConnection, ExecutionConnection, ExecutionPosition
from execution_service.principal import Principal

__all__ = [
    "BuiltBarsRepository",
    "DataConnectionRepository",
    "LatestRepository",
    "MarketDataRepository",
]


class DataConnectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, principal: Principal, data_connection_id: int) -> DataConnection | None:
        stmt = principal.scope(select(DataConnection), DataConnection).where(
            DataConnection.id == data_connection_id
        )
        return (await self.session.scalars(stmt)).first()

    async def list(
        self, principal: Principal, limit: int, offset: int
    ) -> tuple[Sequence[DataConnection], int]:
        stmt = principal.scope(select(DataConnection), DataConnection)
        rows = await self.session.scalars(
            stmt.order_by(DataConnection.id).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return rows.all(), total or 0

    async def by_ids(self, data_connection_ids: Sequence[int]) -> dict[int, DataConnection]:
        stmt = select(DataConnection).where(DataConnection.id.in_(data_connection_ids))
        return {d.id: d for d in await self.session.scalars(stmt)}

    async def is_referenced(self, data_connection_id: int) -> bool:
        stmt = (
            select(ExecutionConnection.id)
            .where(ExecutionConnection.data_connection_id == data_connection_id)
            .limit(1)
        )
        return (await self.session.scalar(stmt)) is not None

    # --- feeds -----------------------------------------------------------------------------------

    async def claim_due(
        self,
        types: Sequence[DataSourceType],
        now: datetime,
        until: datetime,
        limit: int,
        only: Collection[int] | None = None,
    ) -> Sequence[DataConnection]:
        """Active connections of these types due a poll, each moved to `until` in this
        transaction: another worker skips the rows locked here (PostgreSQL) and, once this
        commits, finds them not due."""
        dc = DataConnection
        stmt = (
            select(dc)
            .where(
                dc.type.in_(types),
                dc.is_active.is_(True),
                (dc.next_fetch_at.is_(None)) | (dc.next_fetch_at <= now),
            )
            .order_by(dc.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if only is not None:
            stmt = stmt.where(dc.id.in_(list(only)))
        rows = (await self.session.scalars(stmt)).all()
        if rows:
            await self.session.execute(
                update(dc).where(dc.id.in_([d.id for d in rows])).values(next_fetch_at=until)
            )
        return rows

    async def position_symbols(self, data_connection_ids: Sequence[int]) -> dict[int, set[str]]:
        """The symbols of the open positions each data connection prices."""
        if not data_connection_ids:
            return {}
        conn, position = ExecutionConnection, ExecutionPosition
        stmt = (
            select(conn.data_connection_id, position.symbol)
            .join(position, position.execution_connection_id == conn.id)
            .where(
                conn.data_connection_id.in_(data_connection_ids),
                position.status == PositionStatus.open,
            )
            .distinct()
        )
        out: dict[int, set[str]] = {}
        for dc_id, symbol in await self.session.execute(stmt):
            if dc_id is not None:
                out.setdefault(dc_id, set()).add(symbol)
        return out

    async def claim_streams(
        self, data_connection_ids: Collection[int], now: datetime, until: datetime
    ) -> Sequence[DataConnection]:
        """Of these, the connections no worker streams (no lease, or a lapsed one), each leased
        to `until` in this transaction: another worker skips the rows locked here (PostgreSQL)
        and, once this commits, finds them held."""
        if not data_connection_ids:
            return []
        dc = DataConnection
        stmt = (
            select(dc)
            .where(
                dc.id.in_(list(data_connection_ids)),
                (dc.streamed_until.is_(None)) | (dc.streamed_until <= now),
            )
            .order_by(dc.id)
            .with_for_update(skip_locked=True)
        )
        rows = (await self.session.scalars(stmt)).all()
        if rows:
            await self.session.execute(
                update(dc)
                .where(dc.id.in_([d.id for d in rows]))
                # Polled until its stream delivers (a lapsed holder may have left `streaming`).
                .values(streamed_until=until, mode=FeedMode.polling)
            )
        return rows

    async def hold_stream(self, data_connection_id: int, lease: datetime, **values: object) -> bool:
        """Set `values` on a streamed connection if its lease is still `lease` (this worker's);
        False: another worker took it over (ours had lapsed), or it is gone."""
        dc = DataConnection
        stmt = (
            update(dc)
            .where(dc.id == data_connection_id, dc.streamed_until == lease)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def active_of_types(self, types: Sequence[DataSourceType]) -> Sequence[DataConnection]:
        stmt = select(DataConnection).where(
            DataConnection.type.in_(types), DataConnection.is_active.is_(True)
        )
        return (await self.session.scalars(stmt.order_by(DataConnection.id))).all()

    async def with_timeframes(self) -> Sequence[DataConnection]:
        # Filtered here: a JSON column set to None may hold JSON null rather than SQL NULL.
        rows = await self.session.scalars(select(DataConnection).order_by(DataConnection.id))
        return [d for d in rows if d.timeframes]

    # --- key rotation ----------------------------------------------------------------------------

    async def with_credentials_after(self, last_id: int, limit: int) -> Sequence[DataConnection]:
        stmt = (
            select(DataConnection)
            .where(DataConnection.credentials_encrypted.is_not(None), DataConnection.id > last_id)
            .order_by(DataConnection.id)
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()
