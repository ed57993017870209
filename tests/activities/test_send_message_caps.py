"""send_message under the customer's frequency cap, against a real SMTP server and a
real database: over the cap nothing is sent (DEFERRED with the slot, or STALE and
recorded), a retry keeps its slot, a bounce gives it back, transactional messages
are never capped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.send_message import MessageActivities, claim_for
from engine.customers.consent import ConsentLedger
from engine.devstack.mail_sink import MailSink, ReceivedMail
from engine.messaging.frequency_caps import CapDecision, CapOutcome, FrequencyCapStore, send_key
from engine.messaging.ledger import MessageLedger, idempotency_key
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import CapSlotState, MessageStatus
from engine.platform.settings import Settings
from engine.processes.worker import build_channels
from tests.activities.test_send_message import RefusingHandler, smtp_server
from tests.support.marks import TEST_MARKS
from tests.support.orders import domain_order
from workflows.contracts import Delivery, SendMessageInput, SentMessage
from workflows.frequency import CapCheck
from workflows.plans.model import FrequencyCap
from workflows.vocabulary import Channel

DEFAULT_CAPS = (FrequencyCap(max=1, days=3), FrequencyCap(max=3, days=30))
# Long enough for a stray delivery to show up.
QUIET_PERIOD = 0.5


@dataclass
class Database:
    """The parts the activity uses, on one test database."""

    sessions: async_sessionmaker[AsyncSession]
    caps: FrequencyCapStore
    ledger: MessageLedger
    consent: ConsentLedger


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    yield Database(
        sessions,
        FrequencyCapStore(sessions),
        MessageLedger(sessions),
        ConsentLedger(sessions, TEST_MARKS),
    )
    await engine.dispose()


def activities(db: Database, smtp_port: int) -> MessageActivities:
    settings = Settings(
        _env_file=None,
        smtp_port=smtp_port,
        smtp_timeout_seconds=5,
        secret_key="test-link-secret-0123456789abcdef",
        public_base_url="https://care.shop.example",
    )
    return MessageActivities(
        db.ledger,
        SuppressionList(db.sessions),
        db.consent,
        build_channels(settings, SmtpMailer(SmtpConfig.from_settings(settings)), None),
        db.caps,
    )


def capped(
    customer: str,
    *,
    step: str = "cross_sell",
    category: str = "marketing",
    stale_at: datetime | None = None,
) -> SendMessageInput:
    journey_id = f"order-{uuid.uuid4().hex[:12]}"
    return SendMessageInput(
        journey_id=journey_id,
        step=step,
        template=step,
        category=category,
        channel=Channel.EMAIL,
        order=domain_order(customer_id=customer, email=f"{journey_id}@example.test"),
        cap=CapCheck(
            caps=DEFAULT_CAPS,
            priority=20,
            timezone="Europe/Berlin",
            stale_at=stale_at,
        ),
    )


def new_customer() -> str:
    return f"cus-{uuid.uuid4().hex[:10]}"


def slot_of(request: SendMessageInput) -> str:
    return send_key(request.journey_id, request.step, request.iteration)


def ledger_key(request: SendMessageInput) -> str:
    return idempotency_key(request.journey_id, request.step, request.iteration, Channel.EMAIL)


async def send(sender: MessageActivities, request: SendMessageInput) -> SentMessage:
    return await ActivityEnvironment().run(sender.send_message, request)


async def mails_for(sink: MailSink, journey_id: str) -> list[ReceivedMail]:
    await asyncio.sleep(QUIET_PERIOD)
    return [m for m in sink.handler.received if m.message["X-Aftercare-Journey"] == journey_id]


async def test_over_the_cap_nothing_is_sent_and_the_answer_says_when(
    db: Database, mail_sink: MailSink
) -> None:
    sender = activities(db, mail_sink.port)
    customer = new_customer()
    first, second = capped(customer), capped(customer)

    sent = await send(sender, first)
    deferred = await send(sender, second)

    assert sent.status == Delivery.SENT
    assert deferred.status == Delivery.DEFERRED
    assert deferred.not_before is not None
    assert deferred.not_before - sent.sent_at >= timedelta(days=3)
    assert deferred.not_before - sent.sent_at < timedelta(days=3, minutes=2)
    assert "at most 1 marketing message per 3 days" in deferred.detail
    assert len(await mails_for(mail_sink, first.journey_id)) == 1
    assert await mails_for(mail_sink, second.journey_id) == []
    # The deferred message's ledger row stays open for its later attempt.
    entry = await db.ledger.get(ledger_key(second))
    assert entry is not None
    assert entry.status == MessageStatus.CLAIMED
    slots = {s.send_key: s.state for s in await db.caps.slots(customer)}
    assert slots == {slot_of(first): CapSlotState.SENT, slot_of(second): CapSlotState.HELD}


async def test_stale_over_the_cap_is_dropped_and_recorded_in_the_ledger(
    db: Database, mail_sink: MailSink
) -> None:
    sender = activities(db, mail_sink.port)
    customer = new_customer()
    await send(sender, capped(customer))
    late = capped(customer, stale_at=datetime.now(UTC) + timedelta(days=2))

    dropped = await send(sender, late)
    again = await send(sender, late)  # a retry answers from the ledger

    assert dropped.status == Delivery.STALE
    assert dropped.detail.startswith("over the frequency cap (at most 1 marketing message")
    assert (again.status, again.detail) == (Delivery.STALE, dropped.detail)
    entry = await db.ledger.get(ledger_key(late))
    assert entry is not None
    assert entry.status == MessageStatus.SKIPPED
    assert entry.error == f"stale: {dropped.detail}"
    assert await mails_for(mail_sink, late.journey_id) == []
    assert slot_of(late) not in [s.send_key for s in await db.caps.slots(customer)]


async def claimed_and_reserved(
    db: Database, customer: str, request: SendMessageInput
) -> CapDecision:
    """What an attempt at ``request`` leaves before it talks to the provider: its
    ledger row claimed and the customer's cap slot reserved."""
    await db.ledger.claim(claim_for(request, request.order.customer.email))
    assert request.cap is not None
    return await db.caps.reserve(
        customer_id=customer,
        category="marketing",
        key=slot_of(request),
        check=request.cap,
        now=datetime.now(UTC),
    )


async def test_a_retry_after_a_crash_keeps_its_slot_and_counts_once(
    db: Database, mail_sink: MailSink
) -> None:
    sender = activities(db, mail_sink.port)
    customer = new_customer()
    request = capped(customer)
    # The crashed attempt claimed the ledger row and reserved the slot, then died
    # before talking to SMTP.
    assert request.cap is not None
    reserved = await claimed_and_reserved(db, customer, request)
    assert reserved.outcome == CapOutcome.GRANTED

    result = await send(sender, request)

    assert result.status == Delivery.SENT
    assert len(await mails_for(mail_sink, request.journey_id)) == 1
    slots = await db.caps.slots(customer)
    assert [(s.send_key, s.state, s.slot_at) for s in slots] == [
        (slot_of(request), CapSlotState.SENT, reserved.at)
    ]
    # One message counted: the next one of the customer waits three days from it.
    later = await send(sender, capped(customer))
    assert later.status == Delivery.DEFERRED


async def test_a_send_recorded_for_a_dead_attempt_counts_its_slot_and_sends_nothing(
    db: Database, mail_sink: MailSink
) -> None:
    customer = new_customer()
    request = capped(customer)
    assert request.cap is not None
    # The attempt claimed the row and reserved the slot, the provider took the
    # message, the worker died; the provider's report then recorded the send.
    reserved = await claimed_and_reserved(db, customer, request)
    sent_at = datetime.now(UTC)
    await db.ledger.mark_sent(ledger_key(request), provider_message_id="SM1", sent_at=sent_at)

    result = await send(activities(db, mail_sink.port), request)

    assert (result.status, result.message_id) == (Delivery.SENT, "SM1")
    assert await mails_for(mail_sink, request.journey_id) == []
    slots = await db.caps.slots(customer)
    assert [(s.send_key, s.state, s.slot_at) for s in slots] == [
        (slot_of(request), CapSlotState.SENT, reserved.at)
    ]


async def test_a_bounce_gives_the_slot_back(db: Database, mail_sink: MailSink) -> None:
    customer = new_customer()
    bounced = capped(customer)
    async with smtp_server(RefusingHandler(None)) as refusing:
        result = await send(activities(db, refusing.port), bounced)
    assert result.status == Delivery.BOUNCED
    assert await db.caps.slots(customer) == []

    nxt = await send(activities(db, mail_sink.port), capped(customer))
    assert nxt.status == Delivery.SENT


async def test_an_unavailable_channel_takes_no_slot(db: Database, mail_sink: MailSink) -> None:
    customer = new_customer()
    await db.consent.record(
        customer, granted=False, channel=None, category="marketing", source="api"
    )
    refused = await send(activities(db, mail_sink.port), capped(customer))
    assert refused.status == Delivery.UNAVAILABLE
    assert await db.caps.slots(customer) == []


async def test_transactional_messages_are_never_capped(db: Database, mail_sink: MailSink) -> None:
    sender = activities(db, mail_sink.port)
    customer = new_customer()
    # Even a request that carries a cap: an order confirmation and a shipping notice
    # in the same second both go out, and nothing is counted.
    results = [
        await send(sender, capped(customer, step=step, category="transactional"))
        for step in ("order_confirmation", "shipping_notice", "delivered")
    ]
    assert [r.status for r in results] == [Delivery.SENT] * 3
    assert await db.caps.slots(customer) == []
