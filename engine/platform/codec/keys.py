"""The AES-256 keys that encrypt payloads, as the codec uses them.

Their format (a keyring, ``kid1:base64key,kid2:base64key`` with the first current) is
:mod:`engine.platform.keyring`, re-exported here. A deployment must configure them
(``AFTERCARE_CODEC_KEYS``, the same in every process; `aftercare secrets init` makes a
set). Only the dev stack goes without: it writes a keyring of one random key to
``state_dir/codec-keys.json`` (readable by the owner only) and reuses it
(:func:`load_or_create_keyring`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from engine.platform.files import create_once
from engine.platform.keyring import (
    KEY_BYTES,
    Keyring,
    KeyringError,
    decode_key,
    generate_keyring,
    new_key,
    new_key_id,
    parse_keyring,
)

__all__ = [
    "KEYS_FILE_NAME",
    "KEY_BYTES",
    "Keyring",
    "KeyringError",
    "generate_keyring",
    "load_or_create_keyring",
    "new_key",
    "new_key_id",
    "parse_keyring",
]

KEYS_FILE_NAME = "codec-keys.json"


def load_or_create_keyring(state_dir: Path, configured: str | None) -> Keyring:
    """For the dev stack only: the configured keyring; otherwise the one in
    ``state_dir/codec-keys.json``, made on first use and reused, so history written
    before a restart stays readable."""
    if configured is not None and configured.strip():
        return parse_keyring(configured)
    path = state_dir / KEYS_FILE_NAME
    if not path.exists():
        create_once(path, _dump(generate_keyring()))
    return _load(path)


def _dump(keyring: Keyring) -> str:
    return json.dumps(
        {
            "current": keyring.current_key_id,
            "keys": {kid: base64.b64encode(key).decode() for kid, key in keyring.keys.items()},
        },
        indent=2,
    )


def _load(path: Path) -> Keyring:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        current = data["current"]
        keys = data["keys"]
        if not isinstance(current, str) or not isinstance(keys, dict):
            raise TypeError("unexpected layout")
        return Keyring(current, {str(k): decode_key(str(k), str(v)) for k, v in keys.items()})
    except (ValueError, KeyError, TypeError) as err:
        raise KeyringError(
            f"{path} is not a usable keyring ({err}); restore it from a backup — "
            "deleting it makes every payload it encrypted unreadable"
        ) from err
