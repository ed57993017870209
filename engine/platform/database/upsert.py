"""INSERT ... ON CONFLICT for the two databases we run on.

PostgreSQL and SQLite (3.35+, for RETURNING) both have it, each through its own SQLAlchemy
dialect construct; the statement is otherwise the same. One statement decides a
race between callers (the unique constraint does) without an IntegrityError, and
so without aborting a PostgreSQL transaction.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase

Insert = postgresql.Insert | sqlite.Insert


def insert_on_conflict(dialect: str, table: Table | type[DeclarativeBase]) -> Insert:
    """``insert(table)`` with ``on_conflict_do_nothing``/``on_conflict_do_update``."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database {dialect!r} is not supported (PostgreSQL or SQLite)")
