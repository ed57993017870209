"""The format of the payload keys: a keyring of AES-256 keys, one of them current.

A keyring has one *current* key, which encrypts everything new, and any number of
older keys kept only to decrypt what they once encrypted (history written before
a rotation must stay readable for as long as Temporal keeps it). Its text form is
``kid1:base64key,kid2:base64key`` (the first is current), which is how
``AFTERCARE_CODEC_KEYS`` gives it.

Nothing here reads settings or files, so the settings can check a configured keyring
and the codec (:mod:`engine.platform.codec.keys`) can load one.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field

KEY_BYTES = 32  # AES-256

# Key ids travel in payload metadata and in the configuration string: keep them
# short and free of the separators used there.
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class KeyringError(ValueError):
    """The keys are unusable: malformed configuration, wrong key size, no current key."""


@dataclass(frozen=True)
class Keyring:
    current_key_id: str
    keys: dict[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.current_key_id not in self.keys:
            raise KeyringError(f"the current key {self.current_key_id!r} is not in the keyring")
        for key_id, key in self.keys.items():
            if not _KEY_ID.match(key_id):
                raise KeyringError(
                    f"key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-'"
                )
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}")
        # A private copy: the caller's dict changing later must not change us.
        object.__setattr__(self, "keys", dict(self.keys))

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current_key_id]

    def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)

    def rotated(self, new_key_id: str, new_key: bytes) -> Keyring:
        """This keyring with ``new_key`` current and every key so far kept for decrypting."""
        if new_key_id in self.keys:
            raise KeyringError(f"key id {new_key_id!r} is already in the keyring")
        return Keyring(new_key_id, {new_key_id: new_key, **self.keys})

    def to_config(self) -> str:
        """The ``kid:base64key,...`` form :func:`parse_keyring` reads (current first)."""
        ordered = [self.current_key_id, *(k for k in self.keys if k != self.current_key_id)]
        return ",".join(f"{kid}:{base64.b64encode(self.keys[kid]).decode()}" for kid in ordered)


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_key_id() -> str:
    return f"k-{secrets.token_hex(4)}"


def generate_keyring() -> Keyring:
    key_id = new_key_id()
    return Keyring(key_id, {key_id: new_key()})


def parse_keyring(configured: str) -> Keyring:
    """Read ``kid1:base64key,kid2:base64key``: the first key is current."""
    keys: dict[str, bytes] = {}
    current: str | None = None
    for entry in configured.split(","):
        entry = entry.strip()
        if not entry:
            continue
        key_id, separator, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not separator or not key_id:
            raise KeyringError("codec keys must look like 'kid1:base64key,kid2:base64key'")
        if key_id in keys:
            raise KeyringError(f"key id {key_id!r} appears twice")
        keys[key_id] = decode_key(key_id, encoded.strip())
        current = current or key_id
    if current is None:
        raise KeyringError("no codec key configured")
    return Keyring(current, keys)


def decode_key(key_id: str, encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as err:
        raise KeyringError(f"key {key_id!r} is not valid base64") from err
