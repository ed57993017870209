"""The secret key that signs links: configured, or made once for the dev stack."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from engine.settings import Settings

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
    if not path.exists():
        _create(path, secrets.token_urlsafe(48))
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise RuntimeError(f"{path} is empty: delete it to have a new secret key made")
    return secret


def _create(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write a complete file under a temporary name (mkstemp makes it 0600), then
    # link it into place: link fails if the file exists, so when two processes
    # start at once one key wins and nobody ever reads a half-written file.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        # FileExistsError: another process made it first; use theirs.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
