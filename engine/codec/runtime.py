"""The codec as the service uses it: keys and token from settings (or the state dir)."""

from __future__ import annotations

import secrets

from temporalio.converter import DataConverter

from engine.codec.aes_gcm import data_converter
from engine.codec.keys import Keyring, load_or_create_keyring
from engine.private_files import read_or_create
from engine.settings import Settings

TOKEN_FILE_NAME = "codec-token"


def keyring_for(settings: Settings) -> Keyring:
    configured = settings.codec_keys.get_secret_value() if settings.codec_keys else None
    return load_or_create_keyring(settings.state_dir, configured)


def converter_for(settings: Settings) -> DataConverter:
    """The encrypting converter every client, worker and replayer of this service uses."""
    return data_converter(keyring_for(settings))


def codec_token_for(settings: Settings) -> str:
    if settings.codec_token is not None and settings.codec_token.get_secret_value():
        return settings.codec_token.get_secret_value()
    return read_or_create(settings.state_dir / TOKEN_FILE_NAME, lambda: secrets.token_urlsafe(32))
