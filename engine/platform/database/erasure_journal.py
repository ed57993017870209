"""The erasure journal: every erasure, recorded apart from the database it erased.

Restoring a backup of the database brings back what was in it then: the data keys,
preferences and owner rows of customers erased since, and their erasure marks as they
stood. So every erasure is also written here, in storage the restore does not
overwrite (``AFTERCARE_ERASURE_JOURNAL_URL``: a SQLite file under the state dir by
default; in production a database or volume of its own, backed up on its own), and a
restore re-applies each entry (``engine.customers.erasure_replay``).

An entry is the customer's keyed hash exactly as ``erased_customers`` stores it
(:meth:`engine.platform.database.erasure_marks.ErasureMarks.digest`) and when it was
first journaled: never the customer id. The erasure writes it before it marks the
customer or destroys anything, and every run of an erasure writes it again
(idempotently), so a crash cannot leave an erasure the journal does not know.

The journal is one small table with a schema of its own (not an Alembic migration of
the service's database, which it must not share), made when first used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from engine.platform.database.connection import create_engine
from engine.platform.database.timestamps import as_utc
from engine.platform.database.upsert import insert_on_conflict
from engine.platform.settings import Settings

# A metadata of its own: the service's migrations never see (or drop) this table.
_METADATA = MetaData()
JOURNAL = Table(
    "erasure_journal",
    _METADATA,
    Column("customer_hash", String(64), primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)


class ErasureJournalError(RuntimeError):
    """The journal cannot be used as configured (e.g. it is the database itself)."""


@dataclass(frozen=True)
class JournalEntry:
    customer_hash: str
    erased_at: datetime


class ErasureJournal:
    """The journal on a database URL of its own; close it with :meth:`aclose`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._ready = False

    @classmethod
    def open(cls, journal_url: str, *, database_url: str | None = None) -> ErasureJournal:
        """The journal at ``journal_url``; refused when it is ``database_url`` itself,
        where a restore would overwrite it with the backup's (older) state."""
        if database_url is not None:
            check_apart(journal_url, database_url)
        return cls(_journal_engine(journal_url))

    async def aclose(self) -> None:
        await self._engine.dispose()

    async def record(self, customer_hash: str, erased_at: datetime | None = None) -> None:
        """Journal an erasure; an entry already there keeps its time. Durable when this
        returns: the transaction is committed (SQLite: synchronous=FULL)."""
        await self.record_many([JournalEntry(customer_hash, erased_at or datetime.now(UTC))])

    async def record_many(self, entries: Iterable[JournalEntry]) -> None:
        rows = [{"customer_hash": e.customer_hash, "erased_at": e.erased_at} for e in entries]
        if not rows:
            return
        await self._ensure_table()
        async with self._engine.begin() as connection:
            statement = insert_on_conflict(connection.dialect.name, JOURNAL)
            await connection.execute(statement.on_conflict_do_nothing(), rows)

    async def entries(self) -> list[JournalEntry]:
        """Every journaled erasure, oldest first."""
        await self._ensure_table()
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(JOURNAL.c.customer_hash, JOURNAL.c.erased_at).order_by(
                    JOURNAL.c.erased_at, JOURNAL.c.customer_hash
                )
            )
            return [JournalEntry(customer_hash, as_utc(at)) for customer_hash, at in rows]

    async def _ensure_table(self) -> None:
        if self._ready:
            return
        async with self._engine.begin() as connection:
            try:
                await connection.run_sync(_METADATA.create_all)
            except DBAPIError:
                # Two processes making it at once (PostgreSQL): the other one won.
                if not await _has_table(connection):
                    raise
        self._ready = True


async def _has_table(connection: AsyncConnection) -> bool:
    return await connection.run_sync(lambda sync: inspect(sync).has_table(JOURNAL.name))


def check_apart(journal_url: str, database_url: str) -> None:
    """Refuse a journal inside the database, where a restore would overwrite it."""
    if _same_database(journal_url, database_url):
        raise ErasureJournalError(
            "AFTERCARE_ERASURE_JOURNAL_URL names the service's own database: a "
            "restore would overwrite the journal with the backup. Point it at "
            "storage of its own"
        )


def erasure_journal_for(settings: Settings) -> ErasureJournal:
    """The journal the settings name (``AFTERCARE_ERASURE_JOURNAL_URL``, else SQLite
    under the state dir); no connection is made until it is used."""
    return ErasureJournal.open(
        settings.resolved_erasure_journal_url, database_url=settings.resolved_database_url
    )


def _journal_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url)
    if parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # No pool: erasures are rare, and no connection (nor its file handle) lingers.
    engine = create_async_engine(url, poolclass=NullPool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")
        # A journaled erasure must survive a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine


def _same_database(first: str, second: str) -> bool:
    one, other = make_url(first), make_url(second)
    if one.get_backend_name() != other.get_backend_name():
        return False
    if one.get_backend_name() == "sqlite":
        return bool(one.database) and _resolved(one.database) == _resolved(other.database)
    return (one.host, one.port or 5432, one.database) == (
        other.host,
        other.port or 5432,
        other.database,
    )


def _resolved(path: str | None) -> Path | None:
    return Path(path).resolve() if path else None
