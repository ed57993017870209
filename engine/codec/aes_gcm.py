"""AES-GCM payload encryption, and the data converter every process must share.

Each payload (metadata and data) is serialized whole and encrypted with the
keyring's current key; the result is a payload that tells only how it was made::

    metadata: {encoding: binary/encrypted, encryption-key-id: <kid>}
    data:     12-byte random nonce || AES-GCM ciphertext and tag

The key id is also the associated data, so a payload whose key id was altered
fails authentication instead of being tried under another key. Payloads without
that encoding pass through untouched: history written before encryption was
switched on still replays.
"""

from __future__ import annotations

import dataclasses
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

from engine.codec.keys import Keyring
from engine.payloads import DATA_CONVERTER as PLAIN_DATA_CONVERTER

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
# Versioned domain separation for the associated data (followed by the key id).
_AAD_PREFIX = b"aftercare/payload-codec/v1:"


class CodecError(ValueError):
    """A payload could not be decrypted."""


class UnknownKeyError(CodecError):
    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"payload was encrypted with key {key_id!r}, which is not in the keyring; "
            "keep retired keys configured (after the current one) while history uses them"
        )
        self.key_id = key_id


def _associated_data(key_id: str) -> bytes:
    return _AAD_PREFIX + key_id.encode("utf-8")


class AesGcmCodec(PayloadCodec):
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._ciphers = {kid: AESGCM(key) for kid, key in keyring.keys.items()}

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._keyring.current_key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(), _associated_data(key_id)
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode("utf-8")},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_key_id = payload.metadata.get(KEY_ID_METADATA)
        if raw_key_id is None:
            raise CodecError(f"encrypted payload has no {KEY_ID_METADATA!r} metadata")
        key_id = raw_key_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(key_id)
        if len(payload.data) <= NONCE_BYTES:
            raise CodecError("encrypted payload is too short")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, _associated_data(key_id))
        except InvalidTag as err:
            raise CodecError(
                f"encrypted payload (key {key_id!r}) failed authentication: "
                "altered, truncated or encrypted under another key with this id"
            ) from err
        decoded = Payload()
        try:
            decoded.ParseFromString(plain)
        except DecodeError as err:
            raise CodecError("decrypted payload is not a serialized Payload") from err
        return decoded


def data_converter(keyring: Keyring) -> DataConverter:
    """The pydantic converter, with payloads encrypted and failure messages and stack
    traces moved into an encoded (so encrypted) attribute instead of plaintext."""
    return dataclasses.replace(
        PLAIN_DATA_CONVERTER,
        payload_codec=AesGcmCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
