"""The message ledger on real SQLite and PostgreSQL: claims, outcomes, races."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.messaging.ledger import (
    Claim,
    LedgerEntry,
    MessageLedger,
    idempotency_key,
    message_id_for,
)
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.database.tables import Message, MessageStatus
from tests.support.databases import POSTGRES_ADMIN_DSN, postgres_available, postgres_database


@pytest.fixture
def ledger(db_sessions: async_sessionmaker[AsyncSession]) -> MessageLedger:
    return MessageLedger(db_sessions)


def new_claim(
    journey_id: str | None = None, step: str = "order_confirmation", iteration: int = 0
) -> Claim:
    return Claim(
        journey_id=journey_id or f"journey-{uuid.uuid4().hex[:10]}",
        step=step,
        iteration=iteration,
        channel="email",
        template=step,
        recipient="jane@example.test",
    )


async def rows_for(engine: AsyncEngine, key: str) -> int:
    async with create_session_factory(engine)() as session:
        count = await session.scalar(
            select(func.count()).select_from(Message).where(Message.idempotency_key == key)
        )
    assert isinstance(count, int)
    return count


def sent_time() -> datetime:
    # Microseconds included, so a truncating round trip would show.
    return datetime(2025, 3, 4, 10, 15, 30, 123456, tzinfo=UTC)


async def test_a_first_claim_creates_a_claimed_row(ledger: MessageLedger) -> None:
    claim = new_claim()
    entry = await ledger.claim(claim)

    assert entry == LedgerEntry(
        key=claim.key,
        journey_id=claim.journey_id,
        step="order_confirmation",
        channel="email",
        template="order_confirmation",
        recipient="jane@example.test",
        status=MessageStatus.CLAIMED,
        attempts=1,
        provider_message_id=None,
        sent_at=None,
        error=None,
    )
    assert not entry.is_final
    assert await ledger.get(claim.key) == entry


async def test_claiming_again_counts_the_attempt_on_the_same_row(
    ledger: MessageLedger, db_engine: AsyncEngine
) -> None:
    claim = new_claim()
    await ledger.claim(claim)
    again = await ledger.claim(claim)

    assert again.key == claim.key
    assert again.status == MessageStatus.CLAIMED
    assert again.attempts == 2
    assert not again.is_final
    assert await rows_for(db_engine, claim.key) == 1


async def test_mark_sent_makes_the_entry_final(ledger: MessageLedger) -> None:
    claim = new_claim()
    await ledger.claim(claim)
    await ledger.mark_sent(claim.key, provider_message_id="<abc@shop.example>", sent_at=sent_time())

    entry = await ledger.get(claim.key)
    assert entry is not None
    assert entry.status == MessageStatus.SENT
    assert entry.is_final
    assert entry.provider_message_id == "<abc@shop.example>"
    assert entry.error is None
    assert entry.sent_at == sent_time()
    assert entry.sent_at is not None
    assert entry.sent_at.utcoffset() == timedelta(0)


async def test_a_claim_after_sending_returns_the_final_entry_unchanged(
    ledger: MessageLedger, db_engine: AsyncEngine
) -> None:
    claim = new_claim()
    await ledger.claim(claim)
    await ledger.claim(claim)
    await ledger.mark_sent(claim.key, provider_message_id="<abc@shop.example>", sent_at=sent_time())
    recorded = await ledger.get(claim.key)

    after = await ledger.claim(claim)

    assert after == recorded
    assert after.is_final
    assert after.attempts == 2  # a retry after success is not another attempt
    assert await rows_for(db_engine, claim.key) == 1


async def test_mark_failed_records_the_error(ledger: MessageLedger) -> None:
    claim = new_claim()
    await ledger.claim(claim)
    await ledger.mark_failed(claim.key, "recipient refused: 550 5.1.1 no such user")

    entry = await ledger.get(claim.key)
    assert entry is not None
    assert entry.status == MessageStatus.FAILED
    assert entry.is_final
    assert entry.error == "recipient refused: 550 5.1.1 no such user"
    assert entry.provider_message_id is None
    assert entry.sent_at is None
    # A later claim must not reopen a failed message either.
    assert await ledger.claim(claim) == entry


async def test_mark_failed_keeps_long_errors_bounded(ledger: MessageLedger) -> None:
    claim = new_claim()
    await ledger.claim(claim)
    await ledger.mark_failed(claim.key, "x" * 5000)

    entry = await ledger.get(claim.key)
    assert entry is not None
    assert entry.error == "x" * 2000


async def test_a_final_row_is_never_overwritten(ledger: MessageLedger) -> None:
    sent = new_claim()
    await ledger.claim(sent)
    await ledger.mark_sent(
        sent.key, provider_message_id="<first@shop.example>", sent_at=sent_time()
    )
    first = await ledger.get(sent.key)

    later = sent_time() + timedelta(hours=1)
    await ledger.mark_sent(sent.key, provider_message_id="<second@shop.example>", sent_at=later)
    await ledger.mark_failed(sent.key, "too late")
    assert await ledger.get(sent.key) == first

    failed = new_claim()
    await ledger.claim(failed)
    await ledger.mark_failed(failed.key, "550 no such user")
    failed_entry = await ledger.get(failed.key)
    await ledger.mark_sent(failed.key, provider_message_id="<late@shop.example>", sent_at=later)
    assert await ledger.get(failed.key) == failed_entry


async def test_mark_sent_says_whether_it_recorded_the_send(ledger: MessageLedger) -> None:
    # The HTTP app logs a send that only the provider's report recorded.
    claim = new_claim()
    await ledger.claim(claim)

    assert await ledger.mark_sent(claim.key, provider_message_id="SM1", sent_at=sent_time())
    assert not await ledger.mark_sent(claim.key, provider_message_id="SM2", sent_at=sent_time())
    assert not await ledger.mark_sent(
        "no/such/row/sms", provider_message_id="SM3", sent_at=sent_time()
    )


async def test_outcomes_for_unknown_keys_create_no_rows(
    ledger: MessageLedger, db_engine: AsyncEngine
) -> None:
    await ledger.mark_sent("nobody/step/0", provider_message_id="<x@y>", sent_at=sent_time())
    await ledger.mark_failed("nobody/step/0", "error")
    assert await ledger.get("nobody/step/0") is None
    assert await rows_for(db_engine, "nobody/step/0") == 0


async def test_concurrent_claims_of_one_key_create_exactly_one_row(
    ledger: MessageLedger, db_engine: AsyncEngine
) -> None:
    claim = new_claim()
    entries = await asyncio.gather(*(ledger.claim(claim) for _ in range(10)))

    assert await rows_for(db_engine, claim.key) == 1
    assert {entry.key for entry in entries} == {claim.key}
    assert {entry.status for entry in entries} == {MessageStatus.CLAIMED}
    final = await ledger.get(claim.key)
    assert final is not None
    assert final.attempts == 10


async def test_concurrent_claims_from_two_engines_create_one_row(
    database_url: str, db_engine: AsyncEngine
) -> None:
    # Two worker processes each have their own engine (and connection pool).
    other_engine = create_engine(database_url)
    try:
        first = MessageLedger(create_session_factory(db_engine))
        second = MessageLedger(create_session_factory(other_engine))
        claim = new_claim()
        await asyncio.gather(*(ledger.claim(claim) for ledger in [first, second] * 4))
        assert await rows_for(db_engine, claim.key) == 1
        entry = await second.get(claim.key)
        assert entry is not None
        assert entry.attempts == 8
    finally:
        await other_engine.dispose()


async def test_concurrent_claims_after_sending_all_see_the_final_entry(
    ledger: MessageLedger,
) -> None:
    claim = new_claim()
    await ledger.claim(claim)
    await ledger.mark_sent(claim.key, provider_message_id="<abc@shop.example>", sent_at=sent_time())
    recorded = await ledger.get(claim.key)

    entries = await asyncio.gather(*(ledger.claim(claim) for _ in range(10)))

    assert all(entry == recorded for entry in entries)


def test_idempotency_keys_tell_steps_and_iterations_apart() -> None:
    assert idempotency_key("j-1", "feedback_request", 0) == idempotency_key(
        "j-1", "feedback_request", 0
    )
    keys = {
        idempotency_key("j-1", "feedback_request", 0),
        idempotency_key("j-1", "feedback_request", 1),
        idempotency_key("j-1", "review_request", 0),
        idempotency_key("j-2", "feedback_request", 0),
    }
    assert len(keys) == 4
    assert new_claim("j-1", "feedback_request", 1).key == idempotency_key(
        "j-1", "feedback_request", 1
    )


async def test_iterations_of_one_step_get_their_own_rows(ledger: MessageLedger) -> None:
    journey = f"journey-{uuid.uuid4().hex[:10]}"
    first = await ledger.claim(new_claim(journey, "feedback_request", 0))
    await ledger.mark_sent(first.key, provider_message_id="<a@shop.example>", sent_at=sent_time())

    second = await ledger.claim(new_claim(journey, "feedback_request", 1))

    assert second.key != first.key
    assert second.status == MessageStatus.CLAIMED
    assert second.attempts == 1


async def test_for_journey_lists_its_rows_in_order(ledger: MessageLedger) -> None:
    journey = f"journey-{uuid.uuid4().hex[:10]}"
    steps = ["order_confirmation", "shipping_notice", "delivered", "feedback_request"]
    for step in steps:
        await ledger.claim(new_claim(journey, step))
        await ledger.claim(new_claim())  # another journey's rows interleave
    await ledger.mark_sent(
        new_claim(journey, "shipping_notice").key, provider_message_id="<s@x>", sent_at=sent_time()
    )

    entries = await ledger.for_journey(journey)

    assert [entry.step for entry in entries] == steps
    assert {entry.journey_id for entry in entries} == {journey}
    assert [entry.status for entry in entries] == [
        MessageStatus.CLAIMED,
        MessageStatus.SENT,
        MessageStatus.CLAIMED,
        MessageStatus.CLAIMED,
    ]
    assert await ledger.for_journey("journey-that-never-was") == []


def test_message_ids_are_deterministic_rfc5322_ids() -> None:
    key = idempotency_key("j-1", "order_confirmation", 0)
    message_id = message_id_for(key, "shop.example")

    assert re.fullmatch(r"<[0-9a-f]{32}@shop\.example>", message_id)
    assert message_id_for(key, "shop.example") == message_id
    assert message_id_for(idempotency_key("j-1", "order_confirmation", 1), "shop.example") != (
        message_id
    )
    other_domain = message_id_for(key, "mail.test")
    assert other_domain.split("@")[0] == message_id.split("@")[0]
    assert other_domain.endswith("@mail.test>")


async def test_sent_at_in_another_offset_is_kept_as_the_same_instant(
    ledger: MessageLedger,
) -> None:
    claim = new_claim()
    await ledger.claim(claim)
    berlin_summer = timezone(timedelta(hours=2))
    local = datetime(2025, 6, 1, 14, 0, tzinfo=berlin_summer)
    await ledger.mark_sent(claim.key, provider_message_id="<x@shop.example>", sent_at=local)

    entry = await ledger.get(claim.key)
    assert entry is not None
    assert entry.sent_at == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert entry.sent_at is not None
    assert entry.sent_at.utcoffset() == timedelta(0)


@pytest.mark.postgres
async def test_sent_at_is_utc_whatever_the_postgres_session_time_zone() -> None:
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    with postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'")
        upgrade_database(url)
        engine = create_engine(url)
        try:
            ledger = MessageLedger(create_session_factory(engine))
            claim = new_claim()
            await ledger.claim(claim)
            await ledger.mark_sent(claim.key, provider_message_id="<x@y>", sent_at=sent_time())
            entry = await ledger.claim(claim)
        finally:
            await engine.dispose()
    assert entry.sent_at == sent_time()
    assert entry.sent_at is not None
    assert entry.sent_at.utcoffset() == timedelta(0)
