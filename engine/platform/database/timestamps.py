"""Timestamps read back from the database, made aware.

Every timestamp we store is UTC. SQLite hands them back naive; PostgreSQL hands them
back aware, in the session's zone. Callers compare and serialise them as UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (a naive one is taken to be UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
