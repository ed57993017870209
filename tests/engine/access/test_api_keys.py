"""The API key store on SQLite and PostgreSQL: keys are shown once and stored hashed,
verified, revoked and listed; bad input names the field and writes nothing."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.access.api_keys import (
    ApiKeyNotFound,
    ApiKeyStore,
    InvalidApiKey,
    InvalidKeyRequest,
    KeyProblem,
    parse_key,
)
from engine.access.scopes import ALL_SCOPES, Scope
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import ApiKeyRecord


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> ApiKeyStore:
    return ApiKeyStore(create_session_factory(engine))


async def stored_rows(engine: AsyncEngine) -> list[ApiKeyRecord]:
    async with create_session_factory(engine)() as session:
        return list((await session.execute(select(ApiKeyRecord))).scalars().all())


async def row_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count: int = (
            await connection.execute(select(func.count()).select_from(ApiKeyRecord))
        ).scalar_one()
        return count


async def test_create_returns_the_key_once_and_stores_only_a_hash(
    store: ApiKeyStore, engine: AsyncEngine
) -> None:
    created = await store.create("orders service", ["events:write", "journeys:read"])

    key_id, secret = parse_key(created.token)
    assert created.token == f"ak_{key_id}_{secret}"
    assert created.info.id == key_id
    assert created.info.name == "orders service"
    assert created.info.scopes == {Scope.EVENTS_WRITE, Scope.JOURNEYS_READ}
    assert not created.info.revoked
    assert len(secret) == 43  # 32 random bytes, base64url

    [row] = await stored_rows(engine)
    assert row.id == key_id
    assert row.scopes == "events:write journeys:read"
    columns = [str(getattr(row, column.name)) for column in ApiKeyRecord.__table__.columns]
    assert not any(secret in value for value in columns)
    assert not any(created.token in value for value in columns)
    # Not even the plain SHA-256 of the secret: the stored hash is bound to the id.
    assert row.secret_hash != hashlib.sha256(secret.encode()).hexdigest()
    assert len(row.secret_hash) == 64


async def test_two_keys_differ_in_id_and_secret(store: ApiKeyStore) -> None:
    first = await store.create("a", ["journeys:read"])
    second = await store.create("a", ["journeys:read"])
    assert parse_key(first.token)[0] != parse_key(second.token)[0]
    assert parse_key(first.token)[1] != parse_key(second.token)[1]


async def test_verify_accepts_the_key_and_answers_its_scopes(store: ApiKeyStore) -> None:
    created = await store.create("all", sorted(ALL_SCOPES))
    verified = await store.verify(created.token)
    assert verified.id == created.info.id
    assert verified.scopes == ALL_SCOPES
    assert verified.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"), KeyProblem.UNKNOWN),
        (lambda token: "ak_" + "0" * 16 + token[19:], KeyProblem.UNKNOWN),
        (lambda token: token[:-1], KeyProblem.MALFORMED),
        (lambda token: token.replace("ak_", "sk_", 1), KeyProblem.MALFORMED),
        (lambda token: "", KeyProblem.MALFORMED),
        (lambda token: token + "\n", KeyProblem.MALFORMED),
    ],
    ids=["wrong-secret", "unknown-id", "truncated", "wrong-prefix", "empty", "trailing-newline"],
)
async def test_verify_refuses_wrong_keys(
    store: ApiKeyStore, mangle: object, problem: KeyProblem
) -> None:
    created = await store.create("svc", ["journeys:read"])
    assert callable(mangle)
    presented = mangle(created.token)
    with pytest.raises(InvalidApiKey) as refused:
        await store.verify(presented)
    assert refused.value.problem == problem
    # The error never carries the secret part.
    assert parse_key(created.token)[1] not in str(refused.value)


async def test_revoked_keys_are_refused_and_revoking_again_keeps_the_first_time(
    store: ApiKeyStore,
) -> None:
    created = await store.create("svc", ["events:write"])
    revoked = await store.revoke(created.info.id)
    assert revoked.revoked_at is not None
    with pytest.raises(InvalidApiKey) as refused:
        await store.verify(created.token)
    assert refused.value.problem == KeyProblem.REVOKED
    assert refused.value.key_id == created.info.id

    again = await store.revoke(created.info.id)
    assert again.revoked_at == revoked.revoked_at


async def test_revoking_an_unknown_or_malformed_id(store: ApiKeyStore, engine: AsyncEngine) -> None:
    with pytest.raises(ApiKeyNotFound):
        await store.revoke("0123456789abcdef")
    with pytest.raises(InvalidKeyRequest) as bad:
        await store.revoke("ak_nonsense")
    assert bad.value.field == "id"
    assert await row_count(engine) == 0


async def test_list_keys_shows_every_key_without_secrets(store: ApiKeyStore) -> None:
    first = await store.create("first", ["journeys:read"])
    second = await store.create("second", ["journeys:admin"])
    await store.revoke(first.info.id)

    every = await store.list_keys()
    assert [key.id for key in every] == [first.info.id, second.info.id]
    assert [key.revoked for key in every] == [True, False]
    active = await store.list_keys(include_revoked=False)
    assert [key.name for key in active] == ["second"]


async def test_mark_used_records_the_last_use(store: ApiKeyStore) -> None:
    created = await store.create("svc", ["journeys:read"])
    assert (await store.get(created.info.id)).last_used_at is None
    when = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    await store.mark_used(created.info.id, when)
    assert (await store.get(created.info.id)).last_used_at == when


@pytest.mark.parametrize(
    ("name", "scopes", "field", "words"),
    [
        ("", ["journeys:read"], "name", "empty"),
        ("   ", ["journeys:read"], "name", "empty"),
        ("x" * 101, ["journeys:read"], "name", "100"),
        ("bad\nname", ["journeys:read"], "name", "control"),
        ("svc", [], "scopes", "at least one"),
        ("svc", ["journeys:write"], "scopes", "journeys:write"),
        ("svc", ["journeys:read", "admin"], "scopes", "'admin'"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    store: ApiKeyStore,
    engine: AsyncEngine,
    name: str,
    scopes: list[str],
    field: str,
    words: str,
) -> None:
    with pytest.raises(InvalidKeyRequest) as bad:
        await store.create(name, scopes)
    assert bad.value.field == field
    assert str(bad.value).startswith(f"{field}: ")
    assert words in str(bad.value)
    assert await row_count(engine) == 0
