"""API keys for tests that call the API: made in the test's own database."""

from __future__ import annotations

from collections.abc import Iterable

from engine.access.api_keys import ApiKeyStore
from engine.access.scopes import ALL_SCOPES
from engine.platform.database.connection import create_engine, create_session_factory


async def create_key(database_url: str, scopes: Iterable[str], name: str = "tests") -> str:
    """A new key with ``scopes`` in the database at ``database_url``; its token."""
    engine = create_engine(database_url)
    try:
        created = await ApiKeyStore(create_session_factory(engine)).create(name, scopes)
    finally:
        await engine.dispose()
    return created.token


async def all_scopes_key(database_url: str) -> str:
    return await create_key(database_url, sorted(ALL_SCOPES))


def bearer(api_key: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``api_key``, for raw gRPC stubs."""
    return (("authorization", f"Bearer {api_key}"),)
