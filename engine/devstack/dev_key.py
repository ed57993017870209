"""The dev stack's own API key: made on the first ``aftercare run``, kept in a file
only the owner can read (``state_dir/api-key``), found there by the CLI."""

from __future__ import annotations

import contextlib
from pathlib import Path

from engine.access.api_keys import ApiKeyStore, InvalidApiKey
from engine.access.scopes import ALL_SCOPES
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.files import create_once
from engine.platform.settings import Settings

DEV_KEY_FILE_NAME = "api-key"
DEV_KEY_NAME = "local development (aftercare run)"


def dev_key_file(settings: Settings) -> Path:
    return settings.state_dir / DEV_KEY_FILE_NAME


def read_dev_key(settings: Settings) -> str | None:
    path = dev_key_file(settings)
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


async def ensure_dev_key(settings: Settings) -> Path:
    """The file holding a working all-scopes key, made (again) when missing, when
    the key in it no longer works (database deleted, key revoked), or when it lacks
    a scope added since it was made (the old key is then revoked)."""
    path = dev_key_file(settings)
    engine = create_engine(settings.resolved_database_url)
    try:
        store = ApiKeyStore(create_session_factory(engine))
        existing = read_dev_key(settings)
        if existing is not None:
            try:
                verified = await store.verify(existing)
            except InvalidApiKey:
                verified = None
            if verified is not None:
                if verified.scopes >= ALL_SCOPES:
                    return path
                await store.revoke(verified.id)
        created = await store.create(DEV_KEY_NAME, sorted(ALL_SCOPES))
    finally:
        await engine.dispose()
    # Only one `aftercare run` per state dir (the instance lock), so nobody races us.
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    create_once(path, created.token)
    return path
