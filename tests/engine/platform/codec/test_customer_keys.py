"""The customer key store on real SQLite and PostgreSQL: keys wrapped under the master
keyring, opaque key ids, idempotent registration, destruction, rotation, the cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from engine.platform.codec.customer_keys import (
    CUSTOMER_KEY_ID_PREFIX,
    CustomerDataKey,
    CustomerKeyError,
    CustomerKeys,
    is_customer_key_id,
    key_store_engine,
)
from engine.platform.codec.keys import Keyring, KeyringError, generate_keyring, new_key
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.erasure_marks import CustomerErased, ErasureMarks

# Erased customers are recognised by a hash keyed with the service's secret.
MARKS = ErasureMarks("test-erasure-secret")


class Clock:
    """A clock the test moves by hand: cache expiry without waiting or timing."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keyring() -> Keyring:
    return generate_keyring()


@pytest.fixture
async def keys(database_url: str, keyring: Keyring) -> AsyncIterator[CustomerKeys]:
    store = CustomerKeys.open(database_url, keyring, MARKS)
    yield store
    await store.aclose()


async def _rows(database_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = key_store_engine(database_url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(text(sql))).all()]
    finally:
        await engine.dispose()


async def test_registering_tells_whether_the_customer_has_other_journeys(
    keys: CustomerKeys,
) -> None:
    assert await keys.register_journey("order-O-1", "cus_first") is False
    assert await keys.register_journey("order-O-2", "cus_first") is True
    assert await keys.register_journey("order-P-1", "cus_someone_else") is False
    # Registering again (a retried start) counts the journey itself out.
    assert await keys.register_journey("order-P-1", "cus_someone_else") is False
    assert await keys.register_journey("order-O-1", "cus_first") is True


async def test_registering_makes_one_wrapped_key_per_customer(
    keys: CustomerKeys, database_url: str
) -> None:

    await keys.register_journey("order-A-1", "cus_alice")
    await keys.register_journey("order-A-2", "cus_alice")
    await keys.register_journey("order-B-1", "cus_bob")

    first = await keys.key_for_workflow("order-A-1")
    second = await keys.key_for_workflow("order-A-2")
    bob = await keys.key_for_workflow("order-B-1")
    assert first is not None
    assert bob is not None
    assert second == first  # one key per customer, every journey of theirs
    assert bob.key_id != first.key_id
    assert bob.key != first.key
    assert len(first.key) == 32
    for key in (first, bob):
        assert key.key_id.startswith(CUSTOMER_KEY_ID_PREFIX)
        assert is_customer_key_id(key.key_id)
        assert "alice" not in key.key_id
        assert "bob" not in key.key_id
        assert "hidden" in repr(key)
        assert repr(key.key) not in repr(key)
    assert await keys.key_by_id(first.key_id) == first.key

    # A database dump holds the keys only wrapped: the raw key appears nowhere.
    stored = await _rows(
        database_url, "SELECT key_id, customer_id, wrapped_key, master_key_id FROM customer_keys"
    )
    assert sorted((row[0], row[1]) for row in stored) == sorted(
        [(first.key_id, "cus_alice"), (bob.key_id, "cus_bob")]
    )
    for _, _, wrapped, master_key_id in stored:
        assert master_key_id == keys.keyring.current_key_id
        assert isinstance(wrapped, bytes)
        assert first.key not in wrapped
        assert bob.key not in wrapped
    owners = await _rows(database_url, "SELECT workflow_id, customer_id FROM journey_owners")
    assert sorted(owners) == [
        ("order-A-1", "cus_alice"),
        ("order-A-2", "cus_alice"),
        ("order-B-1", "cus_bob"),
    ]


async def test_registering_again_changes_nothing(keys: CustomerKeys, database_url: str) -> None:
    await keys.register_journey("order-1", "cus_1")
    before = await keys.key_for_workflow("order-1")
    await keys.register_journey("order-1", "cus_1")
    # A second customer claiming the journey does not take it over: first owner stays.
    await keys.register_journey("order-1", "cus_2")
    assert await keys.key_for_workflow("order-1") == before
    assert await _rows(database_url, "SELECT workflow_id, customer_id FROM journey_owners") == [
        ("order-1", "cus_1")
    ]
    assert await _rows(database_url, "SELECT customer_id FROM customer_keys") == [("cus_1",)]


async def test_unknown_journeys_and_key_ids_have_no_key(keys: CustomerKeys) -> None:
    assert await keys.key_for_workflow("order-nobody") is None
    assert await keys.key_by_id("ck-000000000000000000000000") is None
    assert await keys.key_by_id("k-master") is None


async def test_concurrent_registrations_of_one_customer_share_one_key(
    keys: CustomerKeys, database_url: str
) -> None:
    # Separate stores (as separate API processes would be), racing on one customer.
    others = [CustomerKeys.open(database_url, keys.keyring, MARKS) for _ in range(4)]
    try:
        await asyncio.gather(
            *(
                store.register_journey(f"order-race-{n}", "cus_race")
                for n, store in enumerate([keys, *others] * 2)
            )
        )
    finally:
        for store in others:
            await store.aclose()
    found = {await keys.key_for_workflow(f"order-race-{n}") for n in range(10)}
    assert len(found) == 1
    assert None not in found
    assert await _rows(database_url, "SELECT count(*) FROM customer_keys") == [(1,)]
    assert await _rows(database_url, "SELECT count(*) FROM journey_owners") == [(10,)]


@pytest.mark.parametrize(
    ("workflow_id", "customer_id", "field"),
    [
        ("", "cus_1", "workflow_id"),
        ("order-1", "", "customer_id"),
        ("order-1", "   ", "customer_id"),
        ("order-1", "c" * 129, "customer_id"),
        ("o" * 201, "cus_1", "workflow_id"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    keys: CustomerKeys, database_url: str, workflow_id: str, customer_id: str, field: str
) -> None:
    with pytest.raises(CustomerKeyError, match=f"^{field}: "):
        await keys.register_journey(workflow_id, customer_id)
    assert await _rows(database_url, "SELECT count(*) FROM customer_keys") == [(0,)]
    assert await _rows(database_url, "SELECT count(*) FROM journey_owners") == [(0,)]
    with pytest.raises(CustomerKeyError, match=r"^customer_id: "):
        await keys.destroy("")


async def test_destroy_deletes_the_key_and_hashes_the_owners_once(
    keys: CustomerKeys, database_url: str
) -> None:
    await keys.register_journey("order-E-1", "cus_erased")
    await keys.register_journey("order-E-2", "cus_erased")
    await keys.register_journey("order-K-1", "cus_kept")
    erased = await keys.key_for_workflow("order-E-1")
    kept = await keys.key_for_workflow("order-K-1")
    assert erased is not None
    assert kept is not None

    assert await keys.destroy("cus_erased") is True

    # Gone at once in this process, cache included.
    assert await keys.key_for_workflow("order-E-1") is None
    assert await keys.key_for_workflow("order-E-2") is None
    assert await keys.key_by_id(erased.key_id) is None
    assert await _rows(database_url, "SELECT customer_id FROM customer_keys") == [("cus_kept",)]
    # The owner rows stay, so a later erasure still finds the journeys, with a keyed
    # hash in place of the id.
    owners = await _rows(
        database_url, "SELECT workflow_id, customer_id FROM journey_owners ORDER BY workflow_id"
    )
    hashed = MARKS.erased_owner("cus_erased")
    assert owners == [("order-E-1", hashed), ("order-E-2", hashed), ("order-K-1", "cus_kept")]
    assert [w for w, _ in await keys.journeys_of("cus_erased")] == ["order-E-1", "order-E-2"]
    # The other customer is untouched.
    assert await keys.key_for_workflow("order-K-1") == kept
    assert await keys.key_by_id(kept.key_id) == kept.key
    # Idempotent: nothing left to destroy.
    assert await keys.destroy("cus_erased") is False
    assert await keys.destroy("cus_never_seen") is False


async def test_an_erased_customer_gets_no_journey_and_no_key(
    keys: CustomerKeys, database_url: str
) -> None:
    await keys.register_journey("order-X-1", "cus_gone")
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await MARKS.add(session, "cus_gone")
    finally:
        await engine.dispose()
    await keys.destroy("cus_gone")

    # A new order of theirs, and the journey of the old one started again (a carrier
    # event for it): both refused, and nothing is made.
    for workflow_id in ("order-X-2", "order-X-1"):
        with pytest.raises(CustomerErased):
            await keys.register_journey(workflow_id, "cus_gone")
    assert await _rows(database_url, "SELECT customer_id FROM customer_keys") == []
    owners = await _rows(database_url, "SELECT workflow_id FROM journey_owners")
    assert owners == [("order-X-1",)]
    # Another customer is not affected.
    await keys.register_journey("order-Y-1", "cus_here")
    assert await keys.key_for_workflow("order-Y-1") is not None


async def test_another_process_sees_a_destroy_once_its_cache_expires(
    keys: CustomerKeys, database_url: str
) -> None:
    clock = Clock()
    other = CustomerKeys.open(
        database_url, keys.keyring, MARKS, ttl=30.0, miss_ttl=5.0, clock=clock
    )
    try:
        await keys.register_journey("order-C-1", "cus_cached")
        key = await other.key_for_workflow("order-C-1")
        assert key is not None
        assert await other.key_by_id(key.key_id) == key.key

        assert await keys.destroy("cus_cached") is True

        # Within its TTL the other process still holds the key (documented)...
        clock.now += 29.0
        assert await other.key_for_workflow("order-C-1") == key
        assert await other.key_by_id(key.key_id) == key.key
        # ...and once it has passed, finds it gone in the database.
        clock.now += 2.0
        assert await other.key_for_workflow("order-C-1") is None
        assert await other.key_by_id(key.key_id) is None
    finally:
        await other.aclose()


async def test_a_journey_without_owner_is_looked_up_again_after_the_miss_ttl(
    keys: CustomerKeys, database_url: str
) -> None:
    clock = Clock()
    other = CustomerKeys.open(
        database_url, keys.keyring, MARKS, ttl=30.0, miss_ttl=5.0, clock=clock
    )
    try:
        assert await other.key_for_workflow("order-late") is None
        await keys.register_journey("order-late", "cus_late")
        assert await other.key_for_workflow("order-late") is None  # cached miss
        clock.now += 6.0
        assert await other.key_for_workflow("order-late") == await keys.key_for_workflow(
            "order-late"
        )
    finally:
        await other.aclose()


async def test_master_key_rotation_keeps_customer_keys_readable(
    keys: CustomerKeys, database_url: str, keyring: Keyring
) -> None:
    await keys.register_journey("order-R-1", "cus_before")
    before = await keys.key_for_workflow("order-R-1")
    assert before is not None

    rotated = keyring.rotated("k-next", new_key())
    after_rotation = CustomerKeys.open(database_url, rotated, MARKS)
    try:
        # Wrapped under the retired master key, still readable with it configured.
        assert await after_rotation.key_for_workflow("order-R-1") == before
        assert await after_rotation.key_by_id(before.key_id) == before.key
        # New customers are wrapped under the new current key.
        await after_rotation.register_journey("order-R-2", "cus_after")
        masters = await _rows(database_url, "SELECT customer_id, master_key_id FROM customer_keys")
        assert dict((str(row[0]), str(row[1])) for row in masters) == {
            "cus_before": keyring.current_key_id,
            "cus_after": "k-next",
        }

        # Without the retired master key, the old wrapping cannot open: a clear error.
        only_new = Keyring("k-next", {"k-next": rotated.current_key})
        too_early = CustomerKeys.open(database_url, only_new, MARKS)
        try:
            with pytest.raises(KeyringError, match=keyring.current_key_id):
                await too_early.key_by_id(before.key_id)
        finally:
            await too_early.aclose()

        # rewrap() moves every key to the current master; then the old one can go.
        assert await after_rotation.rewrap() == 1
        assert await after_rotation.rewrap() == 0
        retired = CustomerKeys.open(database_url, only_new, MARKS)
        try:
            assert await retired.key_for_workflow("order-R-1") == before
            assert await retired.key_by_id(before.key_id) == before.key
        finally:
            await retired.aclose()
    finally:
        await after_rotation.aclose()


async def test_a_wrapped_key_moved_to_another_row_does_not_open(
    keys: CustomerKeys, database_url: str
) -> None:
    await keys.register_journey("order-S-1", "cus_source")
    await keys.register_journey("order-T-1", "cus_target")
    source = await keys.key_for_workflow("order-S-1")
    target = await keys.key_for_workflow("order-T-1")
    assert source is not None
    assert target is not None
    engine = key_store_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE customer_keys SET wrapped_key = "
                    "(SELECT wrapped_key FROM customer_keys WHERE key_id = :source) "
                    "WHERE key_id = :target"
                ),
                {"source": source.key_id, "target": target.key_id},
            )
    finally:
        await engine.dispose()
    fresh = CustomerKeys.open(database_url, keys.keyring, MARKS)
    try:
        with pytest.raises(CustomerKeyError, match="does not unwrap"):
            await fresh.key_by_id(target.key_id)
        assert await fresh.key_by_id(source.key_id) == source.key
    finally:
        await fresh.aclose()


def test_a_data_key_never_shows_in_its_repr() -> None:
    key = CustomerDataKey("ck-0123456789abcdef01234567", b"\x01" * 32)
    assert key == ("ck-0123456789abcdef01234567", b"\x01" * 32)
    assert "\\x01" not in repr(key)
    assert "ck-0123456789abcdef01234567" in repr(key)
