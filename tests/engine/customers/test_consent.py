"""The consent ledger on real SQLite and PostgreSQL: latest decision wins, wildcards,
categories that need no consent, and one-time link tokens under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.customers.consent import ConsentLedger, token_hash
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import ConsentRecord, UsedLinkToken
from tests.support.marks import TEST_MARKS
from workflows.plans.model import ALWAYS_ALLOWED_CATEGORIES, Category

CUSTOMER = "cus-consent"


@pytest.fixture
def consent(db_sessions: async_sessionmaker[AsyncSession]) -> ConsentLedger:
    return ConsentLedger(db_sessions, TEST_MARKS)


async def count(engine: AsyncEngine, table: type[ConsentRecord] | type[UsedLinkToken]) -> int:
    async with create_session_factory(engine)() as session:
        found = await session.scalar(select(func.count()).select_from(table))
    assert isinstance(found, int)
    return found


def test_the_always_allowed_categories_are_plan_categories() -> None:
    assert {Category.TRANSACTIONAL, Category.SUPPORT} == ALWAYS_ALLOWED_CATEGORIES


async def test_no_event_means_allowed(consent: ConsentLedger) -> None:
    # The shop collected consent at checkout.
    for category in Category:
        assert await consent.allows(CUSTOMER, "email", category)
    assert await consent.history(CUSTOMER) == []


async def test_the_latest_event_wins(consent: ConsentLedger) -> None:
    await consent.record(CUSTOMER, granted=False, channel="email", category="marketing", source="a")
    assert not await consent.allows(CUSTOMER, "email", "marketing")
    await consent.record(CUSTOMER, granted=True, channel="email", category="marketing", source="b")
    assert await consent.allows(CUSTOMER, "email", "marketing")
    await consent.record(CUSTOMER, granted=False, channel="email", category="marketing", source="c")
    assert not await consent.allows(CUSTOMER, "email", "marketing")
    # Others are not affected.
    assert await consent.allows(CUSTOMER, "sms", "marketing")
    assert await consent.allows(CUSTOMER, "email", "feedback")
    assert await consent.allows("cus-other", "email", "marketing")


async def test_wildcards_match_and_the_newest_of_specific_and_wildcard_wins(
    consent: ConsentLedger,
) -> None:
    # No marketing on any channel...
    await consent.record(CUSTOMER, granted=False, channel=None, category="marketing", source="x")
    assert not await consent.allows(CUSTOMER, "email", "marketing")
    assert not await consent.allows(CUSTOMER, "whatsapp", "marketing")
    assert await consent.allows(CUSTOMER, "email", "relationship")
    # ...then marketing by SMS is fine: only SMS.
    await consent.record(CUSTOMER, granted=True, channel="sms", category="marketing", source="x")
    assert await consent.allows(CUSTOMER, "sms", "marketing")
    assert not await consent.allows(CUSTOMER, "email", "marketing")
    # Then nothing at all on SMS: newer than the SMS opt-in, so it wins there.
    await consent.record(CUSTOMER, granted=False, channel="sms", category=None, source="x")
    assert not await consent.allows(CUSTOMER, "sms", "marketing")
    assert not await consent.allows(CUSTOMER, "sms", "feedback")
    assert await consent.allows(CUSTOMER, "email", "feedback")
    # Then everything everywhere is fine again.
    await consent.record(CUSTOMER, granted=True, channel=None, category=None, source="x")
    for channel in ("email", "sms", "whatsapp"):
        assert await consent.allows(CUSTOMER, channel, "marketing")


async def test_transactional_and_support_are_always_allowed(consent: ConsentLedger) -> None:
    await consent.record(CUSTOMER, granted=False, channel=None, category=None, source="api")
    await consent.record(
        CUSTOMER, granted=False, channel="email", category="transactional", source="api"
    )
    for channel in ("email", "sms", "whatsapp"):
        assert await consent.allows(CUSTOMER, channel, "transactional")
        assert await consent.allows(CUSTOMER, channel, "support")
        for category in ("marketing", "relationship", "feedback"):
            assert not await consent.allows(CUSTOMER, channel, category)


async def test_channels_and_categories_are_compared_normalised(consent: ConsentLedger) -> None:
    await consent.record(
        CUSTOMER, granted=False, channel=" Email", category="MARKETING", source="x"
    )
    assert not await consent.allows(CUSTOMER, "email", "marketing")
    assert not await consent.allows(CUSTOMER, "EMAIL ", "Marketing")


async def test_history_is_the_audit_trail_oldest_first(
    consent: ConsentLedger, db_engine: AsyncEngine
) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    await consent.record(CUSTOMER, granted=False, channel=None, category="marketing", source="one")
    await consent.record(CUSTOMER, granted=True, channel="email", category=None, source="two")
    await consent.record("cus-other", granted=False, channel=None, category=None, source="three")

    history = await consent.history(CUSTOMER)

    assert [(e.granted, e.channel, e.category, e.source) for e in history] == [
        (False, None, "marketing", "one"),
        (True, "email", None, "two"),
    ]
    assert all(e.customer_id == CUSTOMER for e in history)
    assert all(before < e.recorded_at < datetime.now(UTC) + timedelta(minutes=5) for e in history)
    assert await count(db_engine, ConsentRecord) == 3


async def test_a_record_needs_a_customer_and_a_source(consent: ConsentLedger) -> None:
    with pytest.raises(ValueError, match="customer"):
        await consent.record("", granted=False, channel=None, category=None, source="api")
    with pytest.raises(ValueError, match="source"):
        await consent.record(CUSTOMER, granted=False, channel=None, category=None, source="")


async def test_a_token_is_used_once_and_only_its_hash_is_kept(
    consent: ConsentLedger, db_engine: AsyncEngine
) -> None:
    assert await consent.use_token_once("token-a")
    assert not await consent.use_token_once("token-a")
    assert await consent.use_token_once("token-b")
    async with create_session_factory(db_engine)() as session:
        stored = set(await session.scalars(select(UsedLinkToken.token_hash)))
    assert stored == {token_hash("token-a"), token_hash("token-b")}
    assert all(len(value) == 64 for value in stored)


async def test_concurrent_uses_of_one_token_give_exactly_one_true(
    database_url: str, db_engine: AsyncEngine
) -> None:
    # Two processes (engines) get the same link at the same moment.
    other_engine = create_engine(database_url)
    try:
        ledgers = [
            ConsentLedger(create_session_factory(db_engine), TEST_MARKS),
            ConsentLedger(create_session_factory(other_engine), TEST_MARKS),
        ]
        results = await asyncio.gather(
            *(ledgers[index % 2].use_token_once("race-token") for index in range(12))
        )
        assert sorted(results) == [False] * 11 + [True]
        assert await count(db_engine, UsedLinkToken) == 1
    finally:
        await other_engine.dispose()


async def test_concurrent_record_once_records_one_event(
    database_url: str, db_engine: AsyncEngine
) -> None:
    other_engine = create_engine(database_url)
    try:
        ledgers = [
            ConsentLedger(create_session_factory(db_engine), TEST_MARKS),
            ConsentLedger(create_session_factory(other_engine), TEST_MARKS),
        ]
        results = await asyncio.gather(
            *(
                ledgers[index % 2].record_once(
                    "race-token",
                    CUSTOMER,
                    granted=False,
                    channel=None,
                    category="marketing",
                    source="one_click",
                )
                for index in range(12)
            )
        )
        assert sorted(results) == [False] * 11 + [True]
        assert await count(db_engine, ConsentRecord) == 1
        assert await count(db_engine, UsedLinkToken) == 1
        assert not await ledgers[0].allows(CUSTOMER, "email", "marketing")
    finally:
        await other_engine.dispose()


async def test_record_once_with_a_used_token_records_nothing(
    consent: ConsentLedger, db_engine: AsyncEngine
) -> None:
    assert await consent.use_token_once("used")
    recorded = await consent.record_once(
        "used", CUSTOMER, granted=False, channel=None, category="marketing", source="one_click"
    )
    assert not recorded
    assert await count(db_engine, ConsentRecord) == 0
    assert await consent.allows(CUSTOMER, "email", "marketing")
