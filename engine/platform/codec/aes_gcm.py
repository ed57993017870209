"""AES-GCM payload encryption, and the data converter every process must share.

Each payload (metadata and data) is serialized whole and encrypted with the
keyring's current key; the result is a payload that tells only how it was made::

    metadata: {encoding: binary/encrypted, encryption-key-id: <kid>}
    data:     12-byte random nonce || AES-GCM ciphertext and tag

The key id is also the associated data, so a payload whose key id was altered
fails authentication instead of being tried under another key. Payloads without
that encoding pass through untouched: history written before encryption was
switched on still replays.

Journeys with an owner are encrypted under their customer's own data key instead
(:mod:`engine.platform.codec.customer_codec`); such payloads also carry
``encryption-key-kind: customer``, and this codec, which has no customer keys,
refuses them with a clear error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from engine.platform.codec.keys import Keyring
from engine.platform.codec.payloads import DATA_CONVERTER as PLAIN_DATA_CONVERTER
from engine.platform.telemetry.catalogue import CODEC_ERRORS, CodecReason
from engine.platform.telemetry.runtime import Instruments

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
# Set (to CUSTOMER_KEY_KIND) on payloads encrypted under a customer's data key.
KEY_KIND_METADATA = "encryption-key-kind"
CUSTOMER_KEY_KIND = b"customer"
NONCE_BYTES = 12
# Versioned domain separation for the associated data (followed by the key id).
_AAD_PREFIX = b"aftercare/payload-codec/v1:"


class CodecError(ValueError):
    """A payload could not be decrypted; ``reason`` says why in a fixed code (the
    ``aftercare_codec_errors`` metric's label)."""

    def __init__(self, message: str, reason: CodecReason = CodecReason.BAD_CIPHERTEXT) -> None:
        super().__init__(message)
        self.reason = reason


class UnknownKeyError(CodecError):
    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"payload was encrypted with key {key_id!r}, which is not in the keyring; "
            "keep retired keys configured (after the current one) while history uses them",
            CodecReason.UNKNOWN_KEY,
        )
        self.key_id = key_id


def _associated_data(key_id: str) -> bytes:
    return _AAD_PREFIX + key_id.encode("utf-8")


def seal(
    cipher: AESGCM, payload: Payload, metadata: dict[str, bytes], associated_data: bytes
) -> Payload:
    """``payload`` serialized whole and encrypted: a fresh random nonce, then the
    ciphertext and tag; ``metadata`` says how (encoding, key id)."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = cipher.encrypt(nonce, payload.SerializeToString(), associated_data)
    return Payload(metadata=metadata, data=nonce + sealed)


def open_sealed(cipher: AESGCM, payload: Payload, associated_data: bytes, key_name: str) -> Payload:
    """The payload :func:`seal` encrypted; ``key_name`` says which key in errors."""
    if len(payload.data) <= NONCE_BYTES:
        raise CodecError("encrypted payload is too short")
    nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
    try:
        plain = cipher.decrypt(nonce, sealed, associated_data)
    except InvalidTag as err:
        raise CodecError(
            f"encrypted payload ({key_name}) failed authentication: "
            "altered, truncated or encrypted under another key with this id"
        ) from err
    decoded = Payload()
    try:
        decoded.ParseFromString(plain)
    except DecodeError as err:
        raise CodecError("decrypted payload is not a serialized Payload") from err
    return decoded


def payload_key_id(payload: Payload) -> str:
    raw_key_id = payload.metadata.get(KEY_ID_METADATA)
    if raw_key_id is None:
        raise CodecError(
            f"encrypted payload has no {KEY_ID_METADATA!r} metadata", CodecReason.MALFORMED
        )
    return raw_key_id.decode("utf-8", errors="replace")


class AesGcmCodec(PayloadCodec):
    def __init__(self, keyring: Keyring, *, instruments: Instruments | None = None) -> None:
        """``instruments``: the process's, which count the payloads that fail."""
        self._keyring = keyring
        self._ciphers = {kid: AESGCM(key) for kid, key in keyring.keys.items()}
        self._errors = (instruments or Instruments.noop()).counter(CODEC_ERRORS)

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        try:
            return [self.encrypt(payload) for payload in payloads]
        except Exception as err:
            self.count_error("encode", err)
            raise

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        try:
            return [self.decrypt(payload) for payload in payloads]
        except Exception as err:
            self.count_error("decode", err)
            raise

    def count_error(self, operation: str, err: Exception) -> None:
        """Count a failed ``operation`` (encode, decode) by its reason; anything but a
        CodecError is the customer key store failing (its database)."""
        reason = err.reason if isinstance(err, CodecError) else CodecReason.KEY_STORE_ERROR
        self._errors.add(operation=operation, reason=reason.value)

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._keyring.current_key_id
        return seal(
            self._ciphers[key_id],
            payload,
            {"encoding": ENCODING, KEY_ID_METADATA: key_id.encode("utf-8")},
            _associated_data(key_id),
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload_key_id(payload)
        if payload.metadata.get(KEY_KIND_METADATA) == CUSTOMER_KEY_KIND:
            raise CodecError(
                f"payload was encrypted with customer data key {key_id!r}; decoding it "
                "needs the customer key store (engine.platform.codec.customer_codec)",
                CodecReason.NO_CUSTOMER_KEYS,
            )
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(key_id)
        return open_sealed(cipher, payload, _associated_data(key_id), f"key {key_id!r}")


def encrypting_converter(
    codec: PayloadCodec, converter_class: type[DataConverter] = DataConverter
) -> DataConverter:
    """The pydantic converter, with payloads encrypted by ``codec`` and failure
    messages and stack traces moved into an encoded (so encrypted) attribute
    instead of plaintext."""
    return converter_class(
        payload_converter_class=PLAIN_DATA_CONVERTER.payload_converter_class,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def data_converter(keyring: Keyring) -> DataConverter:
    """The encrypting converter under the master keyring alone."""
    return encrypting_converter(AesGcmCodec(keyring))
