"""A throwaway PostgreSQL database for runs that start their own stack (``make bench``,
``make chaos``): created empty on a server the caller administers, dropped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL


@asynccontextmanager
async def throwaway_database(admin_dsn: str, purpose: str) -> AsyncIterator[tuple[str, str]]:
    """A new, empty database on the server of ``admin_dsn``, dropped afterwards (its
    name tells what made it: ``aftercare_<purpose>_...``); yields the name and its
    async SQLAlchemy URL."""
    name = f"aftercare_{purpose}_{uuid.uuid4().hex[:12]}"
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    url = URL.create(
        "postgresql+psycopg",
        username=str(info.get("user") or "postgres"),
        password=str(info["password"]) if info.get("password") else None,
        host=str(info.get("host") or "127.0.0.1"),
        port=int(str(info.get("port") or 5432)),
        database=name,
    )
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name, url.render_as_string(hide_password=False)
    finally:
        async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as admin:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
