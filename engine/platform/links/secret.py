"""The secret key that signs links: configured, or made once for the dev stack."""

from __future__ import annotations

import secrets
from pathlib import Path

from engine.platform.files import read_or_create
from engine.platform.settings import Settings

SECRET_FILE_NAME = "secret.key"


def load_or_create_secret(settings: Settings) -> str:
    """``settings.secret_key`` when set; otherwise the key in ``state_dir/secret.key``,
    made on first use (readable by the owner only) and reused from then on, so links
    in messages already sent keep working after a restart."""
    if settings.secret_key is not None:
        configured = settings.secret_key.get_secret_value()
        if configured:
            return configured
    return _load_or_create(settings.state_dir / SECRET_FILE_NAME)


def _load_or_create(path: Path) -> str:
    return read_or_create(path, lambda: secrets.token_urlsafe(48))
