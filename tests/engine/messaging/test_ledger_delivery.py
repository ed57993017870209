"""Delivery reports in the message ledger, on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.messaging.ledger import Claim, LedgerEntry, MessageLedger
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import Message, MessageStatus


@pytest.fixture
def ledger(db_sessions: async_sessionmaker[AsyncSession]) -> MessageLedger:
    return MessageLedger(db_sessions)


def at(minute: int) -> datetime:
    return datetime(2025, 5, 6, 9, minute, 0, 250000, tzinfo=UTC)


async def sent_sms(ledger: MessageLedger) -> tuple[Claim, str]:
    """A ledger row for an SMS that Twilio accepted; returns its claim and SID."""
    claim = Claim(
        journey_id=f"journey-{uuid.uuid4().hex[:10]}",
        step="shipping_notice",
        iteration=0,
        channel="sms",
        template="shipping_notice",
        recipient="+15005550006",
    )
    sid = f"SM{uuid.uuid4().hex}"
    await ledger.claim(claim)
    await ledger.mark_sent(claim.key, provider_message_id=sid, sent_at=at(0))
    return claim, sid


async def entry_of(ledger: MessageLedger, claim: Claim) -> LedgerEntry:
    entry = await ledger.get(claim.key)
    assert entry is not None
    return entry


async def test_a_report_records_status_and_time(ledger: MessageLedger) -> None:
    claim, sid = await sent_sms(ledger)
    before = await entry_of(ledger, claim)
    assert before.delivery_status is None
    assert before.delivery_updated_at is None

    entry = await ledger.record_delivery_status(sid, "delivered", None, at(5))

    assert entry is not None
    assert entry == await entry_of(ledger, claim)
    assert entry.delivery_status == "delivered"
    assert entry.delivery_updated_at == at(5)
    assert entry.delivery_updated_at is not None
    assert entry.delivery_updated_at.utcoffset() == timedelta(0)
    # The send itself is untouched.
    assert entry.status == MessageStatus.SENT
    assert entry.sent_at == at(0)
    assert entry.provider_message_id == sid
    assert entry.error is None
    assert entry.attempts == before.attempts


async def test_report_times_in_other_offsets_are_stored_as_utc(ledger: MessageLedger) -> None:
    _, sid = await sent_sms(ledger)
    local = datetime(2025, 5, 6, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    entry = await ledger.record_delivery_status(sid, "sent", None, local)
    assert entry is not None
    assert entry.delivery_updated_at == datetime(2025, 5, 6, 9, 30, tzinfo=UTC)


async def test_reports_move_forward_in_order(ledger: MessageLedger) -> None:
    claim, sid = await sent_sms(ledger)
    for minute, status in enumerate(["accepted", "queued", "sending", "sent", "delivered"], 1):
        entry = await ledger.record_delivery_status(sid, status, None, at(minute))
        assert entry is not None
        assert entry.delivery_status == status
        assert entry.delivery_updated_at == at(minute)
    assert (await entry_of(ledger, claim)).delivery_status == "delivered"


async def test_a_late_report_never_moves_a_row_backwards(ledger: MessageLedger) -> None:
    claim, sid = await sent_sms(ledger)
    await ledger.record_delivery_status(sid, "delivered", None, at(3))

    for minute, late in enumerate(["sent", "queued", "sending", "accepted"], 4):
        entry = await ledger.record_delivery_status(sid, late, None, at(minute))
        assert entry is not None
        assert entry.delivery_status == "delivered"
        assert entry.delivery_updated_at == at(3)
    assert (await entry_of(ledger, claim)).delivery_status == "delivered"


async def test_a_late_sent_after_undelivered_keeps_the_failure_and_its_error(
    ledger: MessageLedger,
) -> None:
    claim, sid = await sent_sms(ledger)
    await ledger.record_delivery_status(sid, "undelivered", "30005", at(2))
    await ledger.record_delivery_status(sid, "sent", None, at(3))

    entry = await entry_of(ledger, claim)
    assert entry.delivery_status == "undelivered"
    assert entry.error == "delivery error 30005"


async def test_whatsapp_read_comes_after_delivered(ledger: MessageLedger) -> None:
    _, sid = await sent_sms(ledger)
    await ledger.record_delivery_status(sid, "read", None, at(2))
    entry = await ledger.record_delivery_status(sid, "delivered", None, at(3))
    assert entry is not None
    assert entry.delivery_status == "read"


async def test_error_codes_are_appended_once_each(ledger: MessageLedger) -> None:
    claim, sid = await sent_sms(ledger)
    await ledger.record_delivery_status(sid, "undelivered", "30005", at(1))
    # Twilio may call again with the same report: the note is not repeated.
    await ledger.record_delivery_status(sid, "undelivered", "30005", at(2))
    assert (await entry_of(ledger, claim)).error == "delivery error 30005"

    # A code that is a prefix of a recorded one is still a different code.
    await ledger.record_delivery_status(sid, "failed", "3000", at(3))
    await ledger.record_delivery_status(sid, "failed", "30005", at(4))
    entry = await entry_of(ledger, claim)
    assert entry.error == "delivery error 30005; delivery error 3000"
    assert entry.delivery_status == "failed"


async def test_an_error_code_is_added_to_an_existing_error(
    ledger: MessageLedger, db_engine: AsyncEngine
) -> None:
    claim, sid = await sent_sms(ledger)
    async with create_session_factory(db_engine)() as session:
        await session.execute(
            update(Message)
            .where(Message.idempotency_key == claim.key)
            .values(error="provider said: 50% of 'x_y'")
        )
        await session.commit()

    await ledger.record_delivery_status(sid, "failed", "30006", at(1))

    entry = await entry_of(ledger, claim)
    assert entry.error == "provider said: 50% of 'x_y'; delivery error 30006"


async def test_error_codes_are_reduced_to_plain_characters(ledger: MessageLedger) -> None:
    claim, sid = await sent_sms(ledger)
    await ledger.record_delivery_status(sid, "failed", "30%_\r\n08", at(1))
    assert (await entry_of(ledger, claim)).error == "delivery error 3008"
    # Nothing usable left: no note at all.
    await ledger.record_delivery_status(sid, "failed", "%%", at(2))
    await ledger.record_delivery_status(sid, "failed", "", at(3))
    assert (await entry_of(ledger, claim)).error == "delivery error 3008"


async def test_a_report_for_an_unknown_message_changes_nothing(ledger: MessageLedger) -> None:
    claim, _sid = await sent_sms(ledger)
    before = await entry_of(ledger, claim)

    assert await ledger.record_delivery_status("SMnobody", "delivered", "30005", at(1)) is None
    assert await entry_of(ledger, claim) == before


async def test_a_report_only_touches_its_own_message(ledger: MessageLedger) -> None:
    first, first_sid = await sent_sms(ledger)
    second, _ = await sent_sms(ledger)
    await ledger.record_delivery_status(first_sid, "delivered", None, at(1))
    assert (await entry_of(ledger, first)).delivery_status == "delivered"
    assert (await entry_of(ledger, second)).delivery_status is None


async def test_an_unknown_status_is_refused(ledger: MessageLedger) -> None:
    claim, sid = await sent_sms(ledger)
    with pytest.raises(ValueError, match="unknown delivery status"):
        await ledger.record_delivery_status(sid, "exploded", None, at(1))
    assert (await entry_of(ledger, claim)).delivery_status is None


async def test_racing_reports_end_at_the_highest_rank(
    database_url: str, db_engine: AsyncEngine
) -> None:
    # Callbacks land on different processes (engines) in any order at once.
    other_engine = create_engine(database_url)
    try:
        ledgers = [
            MessageLedger(create_session_factory(db_engine)),
            MessageLedger(create_session_factory(other_engine)),
        ]
        claim, sid = await sent_sms(ledgers[0])
        reports = ["queued", "sending", "sent", "delivered"] * 3
        random.Random(7).shuffle(reports)
        await asyncio.gather(
            *(
                ledgers[index % 2].record_delivery_status(sid, status, None, at(index))
                for index, status in enumerate(reports)
            )
        )
        entry = await entry_of(ledgers[1], claim)
        assert entry.delivery_status == "delivered"
    finally:
        await other_engine.dispose()
