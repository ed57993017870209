"""send_message under an operator's pause, against a real SMTP server and a real
database (SQLite and PostgreSQL): a held message is answered PAUSED naming the pause,
and nothing is sent or claimed; past its stale limit it is dropped and the ledger says
why; transactional messages are held only explicitly; a retry of a send already begun
finishes; once the pause is lifted the message goes, once."""

from __future__ import annotations

import asyncio
import dataclasses
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
from engine.messaging.ledger import MessageLedger
from engine.messaging.pauses import PauseRegistry, PauseScope, ScopeKind
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import MessageStatus
from engine.platform.settings import Settings
from engine.processes.worker import build_channels
from tests.support.marks import TEST_MARKS
from tests.support.orders import domain_order
from workflows.contracts import Delivery, SendMessageInput, SentMessage
from workflows.vocabulary import Channel

# Long enough for a stray delivery to show up.
QUIET_PERIOD = 0.5
CROSS_SELL = PauseScope(ScopeKind.STEP, "cross_sell")
MARKETING = PauseScope(ScopeKind.CATEGORY, "marketing")
DEFAULT_PLAN = PauseScope(ScopeKind.PLAN, "default")


@dataclass
class Parts:
    sessions: async_sessionmaker[AsyncSession]
    ledger: MessageLedger
    pauses: PauseRegistry
    sender: MessageActivities


@pytest.fixture
async def parts(database_url: str, mail_sink: MailSink) -> AsyncIterator[Parts]:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    settings = Settings(
        _env_file=None,
        smtp_port=mail_sink.port,
        smtp_timeout_seconds=5,
        secret_key="test-link-secret-0123456789abcdef",
        public_base_url="https://care.shop.example",
    )
    ledger = MessageLedger(sessions)
    # The registry the operators use and the one the worker reads: one here, with
    # no cache, so each test's pause holds at once.
    pauses = PauseRegistry(sessions, cache_ttl=timedelta(0))
    sender = MessageActivities(
        ledger,
        SuppressionList(sessions),
        ConsentLedger(sessions, TEST_MARKS),
        build_channels(settings, SmtpMailer(SmtpConfig.from_settings(settings)), None),
        pauses=pauses,
    )
    try:
        yield Parts(sessions, ledger, pauses, sender)
    finally:
        # Every test's pauses are lifted: the next test starts with none.
        for pause in await pauses.active():
            await pauses.resume(pause.id)
        await engine.dispose()


def message(
    step: str = "cross_sell",
    *,
    category: str = "marketing",
    plan_id: str = "default",
    stale_at: datetime | None = None,
) -> SendMessageInput:
    journey_id = f"order-{uuid.uuid4().hex[:12]}"
    return SendMessageInput(
        journey_id=journey_id,
        step=step,
        template=step,
        category=category,
        channel=Channel.EMAIL,
        order=domain_order(email=f"{journey_id}@example.test"),
        plan_id=plan_id,
        stale_at=stale_at,
    )


def later() -> datetime:
    return datetime.now(UTC) + timedelta(days=2)


async def send(parts: Parts, request: SendMessageInput, *, attempt: int = 1) -> SentMessage:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, attempt=attempt, start_to_close_timeout=timedelta(seconds=30)
    )
    return await env.run(parts.sender.send_message, request)


async def mails_for(sink: MailSink, journey_id: str) -> list[ReceivedMail]:
    await asyncio.sleep(QUIET_PERIOD)
    return [m for m in sink.handler.received if m.message["X-Aftercare-Journey"] == journey_id]


def ledger_key(request: SendMessageInput) -> str:
    return claim_for(request, f"{request.journey_id}@example.test").key


async def test_a_paused_message_is_answered_paused_and_nothing_is_sent_or_claimed(
    parts: Parts, mail_sink: MailSink
) -> None:
    pause = await parts.pauses.pause(CROSS_SELL, reason="jane@example.test asked us to")
    request = message(stale_at=later())

    answer = await send(parts, request)

    assert answer.status == Delivery.PAUSED
    assert answer.detail == f"paused by {pause.id} (step=cross_sell)"
    assert "jane" not in answer.detail  # the operator's free text stays in the registry
    assert await mails_for(mail_sink, request.journey_id) == []
    assert await parts.ledger.get(ledger_key(request)) is None


async def test_once_the_pause_is_lifted_the_message_goes_once(
    parts: Parts, mail_sink: MailSink
) -> None:
    pause = await parts.pauses.pause(MARKETING)
    request = message(stale_at=later())
    assert (await send(parts, request)).status == Delivery.PAUSED

    await parts.pauses.resume(pause.id)
    sent = await send(parts, request)
    again = await send(parts, request)  # the journey asked twice: the ledger answers

    assert sent.status == again.status == Delivery.SENT
    assert again.message_id == sent.message_id
    assert len(await mails_for(mail_sink, request.journey_id)) == 1


async def test_a_paused_message_past_its_stale_limit_is_dropped_and_recorded(
    parts: Parts, mail_sink: MailSink
) -> None:
    pause = await parts.pauses.pause(CROSS_SELL)
    stale_at = datetime.now(UTC) - timedelta(minutes=5)
    request = message(stale_at=stale_at)

    answer = await send(parts, request)

    assert answer.status == Delivery.STALE
    assert answer.detail == (
        f"paused by {pause.id} (step=cross_sell) until past its stale limit "
        f"({stale_at.isoformat(timespec='minutes')})"
    )
    entry = await parts.ledger.get(ledger_key(request))
    assert entry is not None
    assert entry.status == MessageStatus.SKIPPED
    assert entry.error == f"stale: {answer.detail}"
    # Asked again (the pause lifted meanwhile), the ledger's answer stands.
    await parts.pauses.resume(pause.id)
    assert (await send(parts, request)).status == Delivery.STALE
    assert await mails_for(mail_sink, request.journey_id) == []


async def test_a_transactional_message_is_held_only_by_a_pause_that_says_so(
    parts: Parts, mail_sink: MailSink
) -> None:
    await parts.pauses.pause(MARKETING)
    plan_wide = await parts.pauses.pause(DEFAULT_PLAN)

    shipped = message("shipping_notice", category="transactional")
    assert (await send(parts, shipped)).status == Delivery.SENT

    await parts.pauses.resume(plan_wide.id)
    everything = await parts.pauses.pause(DEFAULT_PLAN, include_transactional=True)
    delivered = message("delivered", category="transactional")
    held = await send(parts, delivered)

    assert held.status == Delivery.PAUSED
    assert everything.id in held.detail
    assert len(await mails_for(mail_sink, shipped.journey_id)) == 1
    assert await mails_for(mail_sink, delivered.journey_id) == []


async def test_a_pause_naming_a_transactional_step_holds_it(
    parts: Parts, mail_sink: MailSink
) -> None:
    await parts.pauses.pause(PauseScope(ScopeKind.STEP, "order_confirmation"))
    request = message("order_confirmation", category="transactional")

    assert (await send(parts, request)).status == Delivery.PAUSED
    assert await mails_for(mail_sink, request.journey_id) == []


async def test_a_retry_of_a_send_already_begun_is_not_held(
    parts: Parts, mail_sink: MailSink
) -> None:
    """The first attempt claimed the row and failed (its SMTP server refused for now)
    before the pause came: the retry finishes it. A retry of a send that never began
    (no row) is held like any other."""
    begun, not_begun = message(stale_at=later()), message(stale_at=later())
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    await parts.ledger.claim(
        claim_for(begun, f"{begun.journey_id}@example.test"),
        owner="run/1/1",
        lease=timedelta(seconds=1),
        now=earlier,
    )
    await parts.pauses.pause(CROSS_SELL)

    finished = await send(parts, begun, attempt=2)
    held = await send(parts, not_begun, attempt=2)

    assert finished.status == Delivery.SENT
    assert held.status == Delivery.PAUSED
    assert len(await mails_for(mail_sink, begun.journey_id)) == 1
    assert await mails_for(mail_sink, not_begun.journey_id) == []


async def test_a_request_from_before_pauses_is_held_by_what_it_names(parts: Parts) -> None:
    """Inputs recorded before pauses carry no plan: a plan-wide pause cannot name them,
    a step pause still does."""
    await parts.pauses.pause(DEFAULT_PLAN)
    old = message(plan_id="")

    assert (await send(parts, old)).status == Delivery.SENT

    await parts.pauses.pause(CROSS_SELL)
    assert (await send(parts, message(plan_id=""))).status == Delivery.PAUSED
