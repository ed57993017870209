"""The AES-GCM payload codec and its keyring."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ApplicationError

from engine.platform.codec import (
    ENCODING,
    KEY_ID_METADATA,
    KEYS_FILE_NAME,
    AesGcmCodec,
    CodecError,
    Keyring,
    KeyringError,
    UnknownKeyError,
    data_converter,
    load_or_create_keyring,
    parse_keyring,
)
from engine.platform.codec.keys import generate_keyring, new_key

EMAIL = "ines.quarterhorse@example.org"


def _plain(text: str = EMAIL) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def test_a_payload_round_trips_and_hides_its_content() -> None:
    codec = AesGcmCodec(generate_keyring())
    original = _plain()
    [encrypted] = await codec.encode([original])
    assert EMAIL.encode() not in encrypted.SerializeToString()
    assert b"json/plain" not in encrypted.SerializeToString()
    [decrypted] = await codec.decode([encrypted])
    assert decrypted == original


async def test_the_key_id_and_encoding_are_in_the_metadata() -> None:
    keyring = Keyring("k2026", {"k2026": new_key()})
    [encrypted] = await AesGcmCodec(keyring).encode([_plain()])
    assert encrypted.metadata["encoding"] == ENCODING == b"binary/encrypted"
    assert encrypted.metadata[KEY_ID_METADATA] == b"k2026"


async def test_each_encryption_uses_a_fresh_nonce() -> None:
    codec = AesGcmCodec(generate_keyring())
    first, second = await codec.encode([_plain(), _plain()])
    assert first.data != second.data


async def test_tampered_ciphertext_fails() -> None:
    codec = AesGcmCodec(generate_keyring())
    [encrypted] = await codec.encode([_plain()])
    data = bytearray(encrypted.data)
    data[-1] ^= 0x01
    tampered = Payload(metadata=dict(encrypted.metadata), data=bytes(data))
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([tampered])


async def test_a_relabelled_key_id_fails_authentication() -> None:
    # Both keys identical: only the associated data (the key id) differs.
    key = new_key()
    codec = AesGcmCodec(Keyring("a", {"a": key, "b": key}))
    [encrypted] = await codec.encode([_plain()])
    relabelled = Payload(
        metadata={"encoding": ENCODING, KEY_ID_METADATA: b"b"}, data=encrypted.data
    )
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([relabelled])


async def test_old_payloads_decode_after_rotation() -> None:
    old = Keyring("old", {"old": new_key()})
    [written_before] = await AesGcmCodec(old).encode([_plain()])

    rotated = old.rotated("new", new_key())
    assert rotated.current_key_id == "new"
    codec = AesGcmCodec(rotated)
    [written_after] = await codec.encode([_plain()])
    assert written_after.metadata[KEY_ID_METADATA] == b"new"

    assert await codec.decode([written_before, written_after]) == [_plain(), _plain()]


async def test_an_unknown_key_id_is_a_clear_error() -> None:
    [encrypted] = await AesGcmCodec(Keyring("gone", {"gone": new_key()})).encode([_plain()])
    with pytest.raises(UnknownKeyError, match=r"'gone'.*not in the keyring"):
        await AesGcmCodec(Keyring("other", {"other": new_key()})).decode([encrypted])


async def test_plaintext_payloads_pass_through_decode() -> None:
    codec = AesGcmCodec(generate_keyring())
    plain = _plain()
    binary_null = Payload(metadata={"encoding": b"binary/null"})
    assert await codec.decode([plain, binary_null]) == [plain, binary_null]


async def test_the_data_converter_encrypts_values_and_failure_messages() -> None:
    converter = data_converter(generate_keyring())
    [payload] = await converter.encode([{"email": EMAIL}])
    assert EMAIL.encode() not in payload.SerializeToString()
    assert await converter.decode([payload], [dict]) == [{"email": EMAIL}]

    assert isinstance(converter.failure_converter, DefaultFailureConverterWithEncodedAttributes)
    failure = Failure()
    await converter.encode_failure(ApplicationError(f"cannot mail {EMAIL}"), failure)
    assert failure.message == "Encoded failure"
    assert EMAIL.encode() not in failure.SerializeToString()
    error = await converter.decode_failure(failure)
    assert EMAIL in str(error)


def test_configured_keys_first_is_current(tmp_path: Path) -> None:
    one, two = new_key(), new_key()
    configured = f"k2:{base64.b64encode(two).decode()}, k1:{base64.b64encode(one).decode()}"
    keyring = load_or_create_keyring(tmp_path, configured)
    assert keyring.current_key_id == "k2"
    assert keyring.keys == {"k2": two, "k1": one}
    assert parse_keyring(keyring.to_config()) == keyring
    assert not (tmp_path / KEYS_FILE_NAME).exists()


@pytest.mark.parametrize(
    "configured",
    [
        "no-separator",
        f"k1:{base64.b64encode(b'short').decode()}",
        "k1:not base64!",
        f"bad id:{base64.b64encode(bytes(32)).decode()}",
        f"k1:{base64.b64encode(bytes(32)).decode()},k1:{base64.b64encode(bytes(32)).decode()}",
        ",",
    ],
)
def test_malformed_configuration_is_refused(configured: str) -> None:
    with pytest.raises(KeyringError):
        parse_keyring(configured)


def test_a_keyring_is_made_once_readable_by_the_owner_only(tmp_path: Path) -> None:
    first = load_or_create_keyring(tmp_path, None)
    path = tmp_path / KEYS_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.current_key) == 32
    assert load_or_create_keyring(tmp_path, None) == first
    assert load_or_create_keyring(tmp_path, "") == first


def test_a_damaged_keyring_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / KEYS_FILE_NAME).write_text("{}", encoding="utf-8")
    with pytest.raises(KeyringError, match="not a usable keyring"):
        load_or_create_keyring(tmp_path, None)


def test_the_current_key_must_be_in_the_keyring() -> None:
    with pytest.raises(KeyringError):
        Keyring("missing", {"other": new_key()})
