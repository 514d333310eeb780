"""Engine, session factory and the naming convention every constraint follows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, Numeric, String, TypeDecorator, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeEngine

from execution_service.decimals import normalize, to_str

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Money(TypeDecorator[Decimal]):
    """Unconstrained NUMERIC on PostgreSQL (keeps exactly the digits given); TEXT on SQLite, whose
    NUMERIC is a float. Either way Python gets back the very Decimal it stored."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(80))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        return to_str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return normalize(Decimal(value))


E = TypeVar("E", bound=StrEnum)


class Vocabulary(TypeDecorator[E]):
    """A closed vocabulary (a `StrEnum` of `enums.py`) stored as its value in a string column,
    read back as the member. Writing a value outside the vocabulary fails at flush, so a typo in
    a state never reaches the database."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum
        # Read back by a dict lookup: calling the enum costs several times more, on every row
        # of a 10,000-row read.
        self._members: dict[str, E] = {m.value: m for m in enum}

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        member = self._members.get(value)
        return self.enum(value) if member is None else member


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite drops the zone on the way in)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the driver so _sqlite_begin can say BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front: a deferred read-then-write transaction in WAL mode
    # fails with SQLITE_BUSY instead of waiting when another writer committed in between.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def create_read_engine(url: str, engine: AsyncEngine, pool_size: int = 16) -> AsyncEngine:
    """For single-statement reads (`read`): no transaction around them (one statement is its own
    snapshot) and no pre-ping, so a read costs one round trip instead of a ping in a transaction
    of its own, BEGIN, the statement and ROLLBACK. A pool beside `engine`'s, as large as the
    concurrency one API process serves (a smaller one opens and closes connections under load).
    SQLite: autocommit too (no BEGIN IMMEDIATE, so a read never waits for the write lock); an
    in-memory database cannot be opened twice, so it reads through `engine`."""
    if url.startswith("sqlite"):
        if ":memory:" in url or url.rstrip("/").endswith(":"):
            return engine
        reader = create_async_engine(url)
        event.listen(reader.sync_engine, "connect", _sqlite_connect)  # driver left in autocommit
        return reader
    # Opened on demand: as many as reads ever ran at once in this process (16: the benchmark's
    # concurrency), at most `pool_size` + 4 beside the main pool (none in a worker process).
    return create_async_engine(
        url, isolation_level="AUTOCOMMIT", pool_size=pool_size, max_overflow=4
    )


async def read(engine: AsyncEngine, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run an idempotent read on a pooled connection, once more on a fresh one if the pooled one
    turned out dead (the database restarted): what pre-ping buys, without its round trip."""
    try:
        async with engine.connect() as conn:
            return await query(conn)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    async with engine.connect() as conn:
        return await query(conn)


def dialect_insert(session: AsyncSession, model: Any) -> Any:
    """An INSERT that supports `.on_conflict_do_update` on the session's database (both SQLite
    and PostgreSQL spell it the same way; the statement classes differ)."""
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert(model)
    return sqlite_insert(model)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: services return ORM rows after committing them.
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session
