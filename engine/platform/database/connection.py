"""Async engine and session factory for the configured database URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        # Every SQLite transaction here takes the write lock up front (see
        # _tune_sqlite), so only one can run at a time: more connections would
        # only wait on the lock in busy_timeout's sleep-and-retry loop, and under
        # load run past it ("database is locked"). One connection per process
        # makes transactions queue in the pool instead, in order, without polling.
        kwargs.update(pool_size=1, max_overflow=0, pool_timeout=120)
    else:
        # Survive connections dropped by the server (restarts, pg_terminate_backend).
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    # WAL lets readers and the writer overlap; busy_timeout makes a writer wait for
    # the lock instead of failing at once.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")
        # WAL is a property of the file, set once by the migrations. Switching a
        # file that is open elsewhere fails at once ("database is locked", no
        # busy wait), so a connection switches only a file nobody has migrated.
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0] != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # Take over transaction control from the driver (see "begin" below).
        dbapi_connection.isolation_level = None

    # A deferred transaction that reads and then writes cannot wait for the lock:
    # SQLite answers "database is locked" at once. Taking the write lock up front
    # makes concurrent workers queue on busy_timeout instead.
    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
