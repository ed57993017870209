"""The dev stack's API key: made once, private, kept while it works, replaced when not."""

from __future__ import annotations

import stat
from pathlib import Path

from engine.access.api_keys import ApiKeyStore, parse_key
from engine.access.scopes import ALL_SCOPES
from engine.devstack.dev_key import ensure_dev_key, read_dev_key
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from tests.support.databases import sqlite_url


async def verify(settings: Settings, token: str) -> frozenset[str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        return (await ApiKeyStore(create_session_factory(engine)).verify(token)).scopes
    finally:
        await engine.dispose()


async def revoke(settings: Settings, token: str) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        await ApiKeyStore(create_session_factory(engine)).revoke(parse_key(token)[0])
    finally:
        await engine.dispose()


async def test_the_dev_key_is_made_once_private_and_replaced_when_it_stops_working(
    tmp_path: Path,
) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path, database_url=sqlite_url(tmp_path))
    upgrade_database(settings.resolved_database_url)

    path = await ensure_dev_key(settings)
    assert path == tmp_path / "api-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = read_dev_key(settings)
    assert first is not None
    assert await verify(settings, first) == ALL_SCOPES

    # A second start keeps it.
    await ensure_dev_key(settings)
    assert read_dev_key(settings) == first

    # Revoked (or the database reset): the next start makes a new one.
    await revoke(settings, first)
    await ensure_dev_key(settings)
    second = read_dev_key(settings)
    assert second is not None
    assert second != first
    assert await verify(settings, second) == ALL_SCOPES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    fresh = Settings(_env_file=None, state_dir=tmp_path, database_url=sqlite_url(tmp_path / "db2"))
    (tmp_path / "db2").mkdir()
    upgrade_database(fresh.resolved_database_url)
    await ensure_dev_key(fresh)
    third = read_dev_key(fresh)
    assert third is not None
    assert third != second
    assert await verify(fresh, third) == ALL_SCOPES


async def test_a_dev_key_lacking_a_newer_scope_is_replaced(tmp_path: Path) -> None:
    """A dev stack made before a scope existed (reports:read, say) gets a key with it."""
    settings = Settings(_env_file=None, state_dir=tmp_path, database_url=sqlite_url(tmp_path))
    upgrade_database(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    try:
        store = ApiKeyStore(create_session_factory(engine))
        older = await store.create("aftercare-run", ["events:write", "journeys:read"])
    finally:
        await engine.dispose()
    (tmp_path / "api-key").write_text(older.token)

    await ensure_dev_key(settings)

    replacement = read_dev_key(settings)
    assert replacement is not None
    assert replacement != older.token
    assert await verify(settings, replacement) == ALL_SCOPES
    engine = create_engine(settings.resolved_database_url)
    try:
        (listed,) = [
            key
            for key in await ApiKeyStore(create_session_factory(engine)).list_keys()
            if key.id == older.info.id
        ]
    finally:
        await engine.dispose()
    assert listed.revoked
