"""The secret key that signs links, keys the erased-customer marks, the phone index and
the ledger's hashed recipients.

A deployment configures it (``AFTERCARE_SECRET_KEY``, shared by every process):
:func:`secret_key_for` refuses to go on without it. Only the dev stack
(``aftercare run``) makes one, once, under its state dir (:func:`load_or_create_secret`).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from engine.platform.files import read_or_create
from engine.platform.secret_values import missing
from engine.platform.settings import Settings

SECRET_FILE_NAME = "secret.key"


def new_secret_key() -> str:
    """A fresh key: 48 random bytes, URL-safe base64 (64 characters)."""
    return secrets.token_urlsafe(48)


def secret_key_for(settings: Settings) -> str:
    """``settings.secret_key``; :class:`~engine.platform.secret_values.MissingSecret`
    naming ``AFTERCARE_SECRET_KEY`` when it is not set."""
    if settings.secret_key is not None:
        configured = settings.secret_key.get_secret_value()
        if configured:
            return configured
    raise missing("secret_key", "the key that signs links and keys the hashed identifiers")


def load_or_create_secret(settings: Settings) -> str:
    """For the dev stack only: ``settings.secret_key`` when set; otherwise the key in
    ``state_dir/secret.key``, made on first use (readable by the owner only) and
    reused from then on, so links in messages already sent keep working after a
    restart."""
    if settings.secret_key is not None:
        configured = settings.secret_key.get_secret_value()
        if configured:
            return configured
    return _load_or_create(settings.state_dir / SECRET_FILE_NAME)


def _load_or_create(path: Path) -> str:
    return read_or_create(path, new_secret_key)
