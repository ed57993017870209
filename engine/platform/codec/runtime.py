"""The codec as the service uses it: keys and token from settings.

A deployment configures them (``AFTERCARE_CODEC_KEYS``, ``AFTERCARE_CODEC_TOKEN``,
shared by every process): :func:`keyring_for` and :func:`codec_token_for` refuse to go
on without them, and :func:`require_secrets` checks a process's secrets before it
starts. Only the dev stack makes them, under its state dir (:func:`load_or_create_codec_token`
and :func:`engine.platform.codec.keys.load_or_create_keyring`).

Crypto-shredding (per-customer data keys, :mod:`engine.platform.codec.customer_keys`) needs
the database: a process that uses it makes one :class:`CustomerKeys` with
:func:`customer_keys_for` and hands it to :func:`converter_for` and :func:`codec_for`,
so its client, worker and codec server share one key cache (a destroy then shows at
once in all of them). :func:`engine.platform.temporal.connection.connect` does that by default.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from temporalio.converter import DataConverter

from engine.platform.codec.aes_gcm import AesGcmCodec, encrypting_converter
from engine.platform.codec.customer_codec import CustomerKeyCodec, customer_data_converter
from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.keys import Keyring, parse_keyring
from engine.platform.database.erasure_marks import ErasureMarks
from engine.platform.files import read_or_create
from engine.platform.links.secret import secret_key_for
from engine.platform.secret_values import MissingSecret, missing
from engine.platform.settings import Settings
from engine.platform.telemetry.runtime import Instruments

TOKEN_FILE_NAME = "codec-token"

_KEYS = "the keys that encrypt every payload Temporal stores"
_TOKEN = "the token that lets ops read payloads through the codec server"


def keyring_for(settings: Settings) -> Keyring:
    """The configured payload keys; :class:`MissingSecret` naming
    ``AFTERCARE_CODEC_KEYS`` when they are not set."""
    configured = settings.codec_keys.get_secret_value() if settings.codec_keys else ""
    if not configured.strip():
        raise missing("codec_keys", _KEYS)
    return parse_keyring(configured)


def require_secrets(settings: Settings, *, codec_token: bool = False) -> None:
    """What a deployment's process checks before it starts: the secret key and the codec
    keys (and, for the codec server, its token) are configured. Raises
    :class:`MissingSecret` naming every one that is missing."""
    problems: list[str] = []
    checks: list[Callable[[Settings], object]] = [secret_key_for, keyring_for]
    if codec_token:
        checks.append(codec_token_for)
    for check in checks:
        try:
            check(settings)
        except MissingSecret as err:
            problems.append(str(err))
    if problems:
        raise MissingSecret("\n".join(problems))


def customer_keys_for(settings: Settings) -> CustomerKeys:
    """The customer key store on the service's database, wrapping keys with the
    service's master keyring. Close it with ``await keys.aclose()``."""
    return CustomerKeys.open(
        settings.resolved_database_url, keyring_for(settings), erasure_marks_for(settings)
    )


def erasure_marks_for(settings: Settings) -> ErasureMarks:
    """The erased-customer marks, keyed with the service's secret."""
    return ErasureMarks(secret_key_for(settings))


def converter_for(
    settings: Settings,
    customer_keys: CustomerKeys | None = None,
    *,
    instruments: Instruments | None = None,
) -> DataConverter:
    """The encrypting converter every client, worker and replayer of this service uses:
    with ``customer_keys``, each journey is encrypted under its customer's key.
    ``instruments`` (the process's) count the payloads that fail."""
    if customer_keys is None:
        return encrypting_converter(AesGcmCodec(keyring_for(settings), instruments=instruments))
    return customer_data_converter(customer_keys.keyring, customer_keys, instruments=instruments)


def codec_for(
    settings: Settings,
    customer_keys: CustomerKeys | None = None,
    *,
    instruments: Instruments | None = None,
) -> AesGcmCodec:
    """The codec the codec server decodes with (customer keys included, if given)."""
    if customer_keys is None:
        return AesGcmCodec(keyring_for(settings), instruments=instruments)
    return CustomerKeyCodec(customer_keys.keyring, customer_keys, instruments=instruments)


def new_codec_token() -> str:
    """A fresh codec token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def codec_token_for(settings: Settings) -> str:
    """The configured codec token; :class:`MissingSecret` naming
    ``AFTERCARE_CODEC_TOKEN`` when it is not set."""
    if settings.codec_token is not None and settings.codec_token.get_secret_value():
        return settings.codec_token.get_secret_value()
    raise missing("codec_token", _TOKEN)


def load_or_create_codec_token(settings: Settings) -> str:
    """For the dev stack only: the configured token, else the one in
    ``state_dir/codec-token``, made on first use (readable by the owner only)."""
    if settings.codec_token is not None and settings.codec_token.get_secret_value():
        return settings.codec_token.get_secret_value()
    return read_or_create(settings.state_dir / TOKEN_FILE_NAME, new_codec_token)
