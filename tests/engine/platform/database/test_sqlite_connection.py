"""SQLite files are shared by several processes (API, workers, HTTP app): opening
one must never fail because another process holds it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from engine.platform.database.connection import create_engine
from engine.platform.database.migrate import upgrade_database


def migrated_file(tmp_path: Path) -> Path:
    path = tmp_path / "aftercare.db"
    upgrade_database(f"sqlite+aiosqlite:///{path}")
    return path


def test_migrations_leave_the_file_in_wal_mode(tmp_path: Path) -> None:
    path = migrated_file(tmp_path)

    with sqlite3.connect(path) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()

    assert mode == "wal"


async def test_a_new_connection_opens_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    # Switching a file to WAL needs it to itself and fails without waiting, so
    # a connection that tried to on every open failed when a worker was writing.
    path = migrated_file(tmp_path)
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        # Opening runs the connection's set-up; a statement would begin a
        # transaction, which rightly waits for the other process's.
        async with engine.connect() as connection:
            other_process.execute("ROLLBACK")
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()
    finally:
        other_process.close()
        await engine.dispose()

    assert mode == "wal"
    assert timeout == 10000


async def test_a_file_nobody_migrated_is_switched_to_wal_on_first_open(tmp_path: Path) -> None:
    path = tmp_path / "scratch.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    with sqlite3.connect(path) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"
