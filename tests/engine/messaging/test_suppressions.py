"""The suppression list on real SQLite and PostgreSQL: normalising, races, removal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.messaging.suppressions import SuppressionList, normalise_address
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import SuppressedAddress


@pytest.fixture
def suppressions(db_sessions: async_sessionmaker[AsyncSession]) -> SuppressionList:
    return SuppressionList(db_sessions)


async def row_count(engine: AsyncEngine) -> int:
    async with create_session_factory(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(SuppressedAddress))
    assert isinstance(count, int)
    return count


@pytest.mark.parametrize(
    ("channel", "given", "stored"),
    [
        ("email", "  Jane.Doe@Example.TEST ", "jane.doe@example.test"),
        ("EMAIL", "jane@example.test", "jane@example.test"),
        ("sms", " +4915112345678 ", "+4915112345678"),
        ("whatsapp", "whatsapp:+4915112345678", "+4915112345678"),
        ("whatsapp", "WhatsApp:+4915112345678", "+4915112345678"),
        ("whatsapp", "+4915112345678", "+4915112345678"),
        # Only WhatsApp addresses carry the prefix; on SMS it is not stripped.
        ("sms", "whatsapp:+4915112345678", "whatsapp:+4915112345678"),
    ],
)
def test_addresses_are_normalised(channel: str, given: str, stored: str) -> None:
    assert normalise_address(channel, given) == stored


async def test_an_added_address_is_suppressed(suppressions: SuppressionList) -> None:
    assert not await suppressions.is_suppressed("email", "jane@example.test")

    assert await suppressions.add("email", "Jane@Example.test", "unsubscribed via link")

    assert await suppressions.is_suppressed("email", "jane@example.test")
    assert await suppressions.is_suppressed("email", " JANE@EXAMPLE.TEST")
    # Per channel: an email address says nothing about other channels.
    assert not await suppressions.is_suppressed("sms", "jane@example.test")
    assert not await suppressions.is_suppressed("email", "john@example.test")


async def test_whatsapp_numbers_match_with_or_without_prefix(
    suppressions: SuppressionList,
) -> None:
    assert await suppressions.add("whatsapp", "whatsapp:+15005550006", "Twilio 21610")
    assert await suppressions.is_suppressed("whatsapp", "+15005550006")
    assert await suppressions.is_suppressed("whatsapp", "whatsapp:+15005550006")
    assert not await suppressions.is_suppressed("sms", "+15005550006")


async def test_adding_again_is_harmless_and_keeps_the_first_reason(
    suppressions: SuppressionList, db_engine: AsyncEngine
) -> None:
    assert await suppressions.add("sms", "+15005550006", "Twilio 21610")
    assert not await suppressions.add("sms", " +15005550006 ", "Twilio 30005")

    assert await row_count(db_engine) == 1
    [entry] = await suppressions.entries()
    assert (entry.channel, entry.address, entry.reason) == ("sms", "+15005550006", "Twilio 21610")


async def test_concurrent_adds_create_one_row_and_one_true(
    database_url: str, db_engine: AsyncEngine
) -> None:
    # Two processes (engines) report the same number at the same moment.
    other_engine = create_engine(database_url)
    try:
        lists = [
            SuppressionList(create_session_factory(db_engine)),
            SuppressionList(create_session_factory(other_engine)),
        ]
        results = await asyncio.gather(
            *(
                lists[index % 2].add("email", f"Race@Example.test{' ' * (index % 3)}", "bounce")
                for index in range(12)
            )
        )
        assert sorted(results) == [False] * 11 + [True]
        assert await row_count(db_engine) == 1
        assert await lists[1].is_suppressed("email", "race@example.test")
    finally:
        await other_engine.dispose()


async def test_remove_lifts_a_suppression(suppressions: SuppressionList) -> None:
    await suppressions.add("email", "jane@example.test", "unsubscribed")
    await suppressions.add("sms", "+15005550006", "Twilio 21610")

    assert await suppressions.remove("email", "JANE@example.test ")
    assert not await suppressions.is_suppressed("email", "jane@example.test")
    assert await suppressions.is_suppressed("sms", "+15005550006")
    # Nothing left to remove.
    assert not await suppressions.remove("email", "jane@example.test")
    # Suppressing again after removal works.
    assert await suppressions.add("email", "jane@example.test", "unsubscribed again")


async def test_entries_lists_everything_oldest_first(suppressions: SuppressionList) -> None:
    assert await suppressions.entries() == []
    before = datetime.now(UTC) - timedelta(minutes=1)
    await suppressions.add("email", "b@example.test", "first")
    await suppressions.add("whatsapp", "whatsapp:+15005550006", "second")
    await suppressions.add("sms", "+15005550006", "third")

    entries = await suppressions.entries()

    assert [(e.channel, e.address, e.reason) for e in entries] == [
        ("email", "b@example.test", "first"),
        ("whatsapp", "+15005550006", "second"),
        ("sms", "+15005550006", "third"),
    ]
    for entry in entries:
        assert entry.created_at.utcoffset() == timedelta(0)
        assert before <= entry.created_at <= datetime.now(UTC) + timedelta(minutes=1)


async def test_an_empty_address_is_refused(suppressions: SuppressionList) -> None:
    with pytest.raises(ValueError, match="empty address"):
        await suppressions.add("email", "   ", "nothing")
    with pytest.raises(ValueError, match="empty address"):
        await suppressions.add("whatsapp", "whatsapp:", "nothing")
    assert await suppressions.entries() == []
