"""Payload encryption: customer data never reaches Temporal in plaintext.

:mod:`engine.platform.codec.keys` holds the AES-256 keyring, :mod:`engine.platform.codec.aes_gcm`
the payload codec and the data converter built on it, :mod:`engine.platform.codec.server`
the HTTP codec server the Temporal UI and CLI use to show decrypted payloads.
"""

from __future__ import annotations

from engine.platform.codec.aes_gcm import (
    ENCODING,
    KEY_ID_METADATA,
    AesGcmCodec,
    CodecError,
    UnknownKeyError,
    data_converter,
)
from engine.platform.codec.keys import (
    KEYS_FILE_NAME,
    Keyring,
    KeyringError,
    load_or_create_keyring,
    parse_keyring,
)

__all__ = [
    "ENCODING",
    "KEYS_FILE_NAME",
    "KEY_ID_METADATA",
    "AesGcmCodec",
    "CodecError",
    "Keyring",
    "KeyringError",
    "UnknownKeyError",
    "data_converter",
    "load_or_create_keyring",
    "parse_keyring",
]
