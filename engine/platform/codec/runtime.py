"""The codec as the service uses it: keys and token from settings (or the state dir).

Crypto-shredding (per-customer data keys, :mod:`engine.platform.codec.customer_keys`) needs
the database: a process that uses it makes one :class:`CustomerKeys` with
:func:`customer_keys_for` and hands it to :func:`converter_for` and :func:`codec_for`,
so its client, worker and codec server share one key cache (a destroy then shows at
once in all of them). :func:`engine.platform.temporal.connection.connect` does that by default.
"""

from __future__ import annotations

import secrets

from temporalio.converter import DataConverter

from engine.platform.codec.aes_gcm import AesGcmCodec, data_converter
from engine.platform.codec.customer_codec import CustomerKeyCodec, customer_data_converter
from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.keys import Keyring, load_or_create_keyring
from engine.platform.database.erasure_marks import ErasureMarks
from engine.platform.files import read_or_create
from engine.platform.links.secret import load_or_create_secret
from engine.platform.settings import Settings

TOKEN_FILE_NAME = "codec-token"


def keyring_for(settings: Settings) -> Keyring:
    configured = settings.codec_keys.get_secret_value() if settings.codec_keys else None
    return load_or_create_keyring(settings.state_dir, configured)


def customer_keys_for(settings: Settings) -> CustomerKeys:
    """The customer key store on the service's database, wrapping keys with the
    service's master keyring. Close it with ``await keys.aclose()``."""
    return CustomerKeys.open(
        settings.resolved_database_url, keyring_for(settings), erasure_marks_for(settings)
    )


def erasure_marks_for(settings: Settings) -> ErasureMarks:
    """The erased-customer marks, keyed with the service's secret."""
    return ErasureMarks(load_or_create_secret(settings))


def converter_for(settings: Settings, customer_keys: CustomerKeys | None = None) -> DataConverter:
    """The encrypting converter every client, worker and replayer of this service uses:
    with ``customer_keys``, each journey is encrypted under its customer's key."""
    if customer_keys is None:
        return data_converter(keyring_for(settings))
    return customer_data_converter(customer_keys.keyring, customer_keys)


def codec_for(settings: Settings, customer_keys: CustomerKeys | None = None) -> AesGcmCodec:
    """The codec the codec server decodes with (customer keys included, if given)."""
    if customer_keys is None:
        return AesGcmCodec(keyring_for(settings))
    return CustomerKeyCodec(customer_keys.keyring, customer_keys)


def codec_token_for(settings: Settings) -> str:
    if settings.codec_token is not None and settings.codec_token.get_secret_value():
        return settings.codec_token.get_secret_value()
    return read_or_create(settings.state_dir / TOKEN_FILE_NAME, lambda: secrets.token_urlsafe(32))
