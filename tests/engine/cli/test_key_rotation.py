"""Rotating the master key by command: ``aftercare secrets rotate-codec-key`` prints a
keyring the settings accept, with a fresh key in front of the old ones, and
``aftercare db rewrap-keys`` moves every customer key under it, after which a
keyring holding only the new key still opens payloads sealed before the rotation
(on SQLite and PostgreSQL, with the real key store and codec)."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.api.common.v1 import Payload
from temporalio.converter import WorkflowSerializationContext
from typer.testing import CliRunner

from engine.cli.app import app
from engine.platform.codec.customer_codec import CustomerKeyCodec
from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.keys import Keyring, generate_keyring, parse_keyring
from engine.platform.codec.runtime import keyring_for
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import CustomerKeyRecord
from engine.platform.settings import Settings
from tests.support.marks import TEST_MARKS

runner = CliRunner()
TEXT = b'{"email": "wilhelmina.quarrendon@example.org"}'


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("AFTERCARE_")]:
        monkeypatch.delenv(name)


async def sealed_payload(database_url: str, keyring: Keyring) -> Payload:
    keys = CustomerKeys.open(database_url, keyring, TEST_MARKS)
    try:
        await keys.register_journey("order-R-1", "cus-rotated")
        codec = CustomerKeyCodec(keyring, keys).with_context(
            WorkflowSerializationContext(namespace="default", workflow_id="order-R-1")
        )
        [payload] = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=TEXT)])
        return payload
    finally:
        await keys.aclose()


async def opened(database_url: str, keyring: Keyring, payload: Payload) -> bytes:
    keys = CustomerKeys.open(database_url, keyring, TEST_MARKS)
    try:
        [plain] = await CustomerKeyCodec(keyring, keys).decode([payload])
        return plain.data
    finally:
        await keys.aclose()


async def master_key_ids(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list(await session.scalars(select(CustomerKeyRecord.master_key_id)))
    finally:
        await engine.dispose()


def invoke(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


async def test_rotation_puts_a_fresh_key_in_front_and_rewrap_moves_every_key_under_it(
    database_url: str, tmp_path: Path
) -> None:
    old = generate_keyring()
    payload = await sealed_payload(database_url, old)
    env = {
        "AFTERCARE_STATE_DIR": str(tmp_path),
        "AFTERCARE_DATABASE_URL": database_url,
        "AFTERCARE_SECRET_KEY": secrets.token_urlsafe(32),
        "AFTERCARE_CODEC_KEYS": old.to_config(),
    }

    code, out, err = await asyncio.to_thread(invoke, "secrets", "rotate-codec-key", env=env)
    assert code == 0, err
    value = out.strip()
    assert old.to_config() not in err
    assert value not in err
    rotated = keyring_for(Settings(_env_file=None, codec_keys=value))
    assert rotated.current_key_id != old.current_key_id
    assert rotated.keys == {rotated.current_key_id: rotated.current_key, **old.keys}
    assert "aftercare db rewrap-keys" in err

    env["AFTERCARE_CODEC_KEYS"] = value
    code, out, err = await asyncio.to_thread(invoke, "db", "rewrap-keys", env=env)
    assert code == 0, err
    assert (
        f"rewrapped 1 customer keys; every one is now wrapped under {rotated.current_key_id}" in out
    )
    assert await master_key_ids(database_url) == [rotated.current_key_id]
    # The old master key can go: the new one alone opens what was sealed before.
    only_new = Keyring(rotated.current_key_id, {rotated.current_key_id: rotated.current_key})
    assert await opened(database_url, only_new, payload) == TEXT
    # A second run has nothing to move.
    code, out, err = await asyncio.to_thread(invoke, "db", "rewrap-keys", env=env)
    assert (code, out.split(";")[0]) == (0, "rewrapped 0 customer keys")


def test_rotation_without_configured_keys_names_the_variable() -> None:
    code, out, err = invoke("secrets", "rotate-codec-key", env={})
    assert code == 2
    assert out == ""
    assert "AFTERCARE_CODEC_KEYS" in err


def test_a_rotated_value_parses_back_with_every_key() -> None:
    old = generate_keyring()
    code, out, _ = invoke(
        "secrets", "rotate-codec-key", env={"AFTERCARE_CODEC_KEYS": old.to_config()}
    )
    assert code == 0
    assert set(parse_keyring(out.strip()).keys) > set(old.keys)
