"""Real databases for tests: a fresh SQLite file, and a fresh database on the local
PostgreSQL server (127.0.0.1:5432, trust auth), dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'aftercare-test.db'}"


def postgres_available() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a throwaway database; yields its async SQLAlchemy URL."""
    name = f"aftercare_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
