"""The send_message activity (email channel) against a real SMTP server and a real ledger database:
delivered once, never twice, and failures classified for Temporal's retries."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.send_message import TRANSIENT_FAILURE, MessageActivities, claim_for
from engine.customers.consent import ConsentLedger
from engine.devstack.mail_sink import MailboxHandler, MailSink, ReceivedMail
from engine.messaging.ledger import MessageLedger, idempotency_key, message_id_for
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import MessageStatus
from engine.platform.links.tokens import LinkSigner
from engine.platform.settings import Settings
from engine.processes.worker import build_channels
from tests.support.marks import TEST_MARKS
from tests.support.net import free_port
from tests.support.orders import domain_order
from workflows.contracts import Delivery, SendMessageInput, SentMessage
from workflows.vocabulary import Channel

STEP = "order_confirmation"
# Long enough for a stray second delivery to show up, short enough to keep tests fast.
QUIET_PERIOD = 0.5


class RefusingHandler(MailboxHandler):
    """Refuses every recipient with a permanent 5xx."""

    reply = "550 5.1.1 no such user"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        return self.reply


class DeferringHandler(RefusingHandler):
    """Answers every recipient with a temporary 4xx (greylisting, full mailbox...)."""

    reply = "451 4.3.0 try again later"


@asynccontextmanager
async def smtp_server(handler: MailboxHandler) -> AsyncIterator[MailSink]:
    sink = MailSink("127.0.0.1", 0, None)
    sink.handler = handler
    async with sink:
        yield sink


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[MessageLedger]:
    engine = create_engine(database_url)
    yield MessageLedger(create_session_factory(engine))
    await engine.dispose()


def email_activities(database_url: str, ledger: MessageLedger, smtp_port: int) -> MessageActivities:
    settings = Settings(
        _env_file=None,
        smtp_port=smtp_port,
        smtp_timeout_seconds=5,
        database_url=database_url,
        secret_key="test-link-secret-0123456789abcdef",
        public_base_url="https://care.shop.example",
    )
    mailer = SmtpMailer(SmtpConfig.from_settings(settings))
    return MessageActivities(
        ledger,
        SuppressionList(ledger.sessions),
        ConsentLedger(ledger.sessions, TEST_MARKS),
        build_channels(settings, mailer, None),
    )


def new_request(name: str = "Jane Doe") -> SendMessageInput:
    journey_id = f"journey-{uuid.uuid4().hex[:12]}"
    return SendMessageInput(
        journey_id=journey_id,
        step=STEP,
        template=STEP,
        category="transactional",
        channel=Channel.EMAIL,
        order=domain_order(name=name, email=f"{journey_id}@example.test"),
    )


def key_of(request: SendMessageInput) -> str:
    return idempotency_key(request.journey_id, request.step, request.iteration, Channel.EMAIL)


async def send(
    activities: MessageActivities, request: SendMessageInput, *, attempt: int = 1
) -> SentMessage:
    """Run the activity as Temporal's attempt number ``attempt`` would."""
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, attempt=attempt)
    return await environment.run(activities.send_message, request)


def mails_for(sink: MailSink, journey_id: str) -> list[ReceivedMail]:
    return [
        mail for mail in sink.handler.received if mail.message["X-Aftercare-Journey"] == journey_id
    ]


async def settled_mails_for(sink: MailSink, journey_id: str) -> list[ReceivedMail]:
    """The journey's emails once no further one has had a chance to arrive."""
    await asyncio.sleep(QUIET_PERIOD)
    return mails_for(sink, journey_id)


def header_lines(mail: ReceivedMail) -> list[bytes]:
    assert mail.path is not None
    raw = mail.path.read_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    return head.splitlines()


async def test_one_email_arrives_as_built(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    request = new_request()
    email = request.order.customer.email

    result = await send(email_activities(database_url, ledger, mail_sink.port), request)

    [mail] = await settled_mails_for(mail_sink, request.journey_id)
    message = mail.message
    assert mail.recipients == [email]
    assert [a.addr_spec for a in message["To"].addresses] == [email]
    assert message["Subject"] == f"Your order {request.order.order_id} is confirmed"
    assert message["Message-ID"] == result.message_id
    assert result.message_id == message_id_for(key_of(request), "shop.example")
    assert message["X-Aftercare-Step"] == STEP
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    html = message.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    assert request.order.order_id in html.get_content()

    assert result.step == STEP
    assert result.channel == Channel.EMAIL
    assert result.template == STEP
    assert result.status == "sent"
    entry = await ledger.get(key_of(request))
    assert entry is not None
    assert entry.status == MessageStatus.SENT
    assert entry.attempts == 1
    assert entry.provider_message_id == result.message_id
    assert entry.sent_at == result.sent_at


async def test_a_retry_after_success_sends_nothing_and_answers_the_same(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    activities = email_activities(database_url, ledger, mail_sink.port)
    request = new_request()

    first = await send(activities, request)
    second = await send(activities, request)

    assert second == first
    assert len(await settled_mails_for(mail_sink, request.journey_id)) == 1


async def test_a_new_worker_after_success_sends_nothing_either(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    request = new_request()
    first = await send(email_activities(database_url, ledger, mail_sink.port), request)

    # Another worker process: its own engine and ledger on the same database.
    engine = create_engine(database_url)
    try:
        other_ledger = MessageLedger(create_session_factory(engine))
        again = await send(email_activities(database_url, other_ledger, mail_sink.port), request)
    finally:
        await engine.dispose()

    assert again == first
    assert len(await settled_mails_for(mail_sink, request.journey_id)) == 1


async def test_a_claim_left_by_a_crashed_attempt_still_sends_once(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    request = new_request()
    # The earlier attempt claimed the key and died before talking to SMTP.
    await ledger.claim(claim_for(request, request.order.customer.email))

    result = await send(email_activities(database_url, ledger, mail_sink.port), request)

    [mail] = await settled_mails_for(mail_sink, request.journey_id)
    assert mail.message["Message-ID"] == result.message_id
    entry = await ledger.get(key_of(request))
    assert entry is not None
    assert entry.status == MessageStatus.SENT
    assert entry.attempts == 2
    assert entry.provider_message_id == result.message_id


async def test_a_refused_recipient_bounces_for_good_and_is_suppressed(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    request = new_request()
    async with smtp_server(RefusingHandler(None)) as refusing:
        result = await send(email_activities(database_url, ledger, refusing.port), request)
        assert refusing.handler.received == []

    assert result.status == Delivery.BOUNCED
    assert "550" in result.detail
    assert await SuppressionList(ledger.sessions).is_suppressed(
        Channel.EMAIL, request.order.customer.email
    )
    entry = await ledger.get(key_of(request))
    assert entry is not None
    assert entry.status == MessageStatus.FAILED
    assert entry.error is not None
    assert "550" in entry.error
    assert "no such user" in entry.error

    # Running it again, even against a server that would accept, sends nothing.
    again = await send(email_activities(database_url, ledger, mail_sink.port), request)
    assert again.status == Delivery.BOUNCED
    assert await settled_mails_for(mail_sink, request.journey_id) == []

    # A later message of another journey to the suppressed address is not sent either.
    other = dataclasses.replace(request, journey_id=f"journey-{uuid.uuid4().hex[:12]}")
    skipped = await send(email_activities(database_url, ledger, mail_sink.port), other)
    assert skipped.status == Delivery.UNAVAILABLE
    assert "suppressed" in skipped.detail
    assert await settled_mails_for(mail_sink, other.journey_id) == []


async def test_a_deferred_recipient_is_retryable_and_a_retry_delivers(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    request = new_request()
    async with smtp_server(DeferringHandler(None)) as deferring:
        with pytest.raises(ApplicationError) as raised:
            await send(email_activities(database_url, ledger, deferring.port), request)
        assert deferring.handler.received == []

    assert raised.value.type == TRANSIENT_FAILURE
    assert not raised.value.non_retryable
    assert "451" in str(raised.value)
    entry = await ledger.get(key_of(request))
    assert entry is not None
    assert entry.status == MessageStatus.CLAIMED
    assert not entry.is_final

    retried = email_activities(database_url, ledger, mail_sink.port)
    result = await send(retried, request, attempt=2)
    [mail] = await settled_mails_for(mail_sink, request.journey_id)
    assert mail.message["Message-ID"] == result.message_id
    entry = await ledger.get(key_of(request))
    assert entry is not None
    assert entry.status == MessageStatus.SENT
    assert entry.attempts == 2


async def test_an_unreachable_server_is_retryable_and_a_retry_delivers(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    request = new_request()
    nothing_listens = free_port()

    with pytest.raises(ApplicationError) as raised:
        await send(email_activities(database_url, ledger, nothing_listens), request)

    assert raised.value.type == TRANSIENT_FAILURE
    assert not raised.value.non_retryable
    entry = await ledger.get(key_of(request))
    assert entry is not None
    assert entry.status == MessageStatus.CLAIMED
    assert entry.provider_message_id is None

    result = await send(email_activities(database_url, ledger, mail_sink.port), request)
    assert len(await settled_mails_for(mail_sink, request.journey_id)) == 1
    entry = await ledger.get(key_of(request))
    assert entry is not None
    assert entry.status == MessageStatus.SENT
    assert entry.provider_message_id == result.message_id


async def test_a_hostile_customer_name_cannot_inject_headers(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    request = new_request(name="Jane Doe\r\nBcc: x@example.com")
    email = request.order.customer.email

    await send(email_activities(database_url, ledger, mail_sink.port), request)

    [mail] = await settled_mails_for(mail_sink, request.journey_id)
    # aiosmtplib would turn an injected Bcc header into an extra envelope recipient.
    assert mail.recipients == [email]
    assert mail.message.get_all("Bcc") is None
    to = mail.message["To"]
    assert "\r" not in str(to)
    assert "\n" not in str(to)
    assert [a.addr_spec for a in to.addresses] == [email]

    lines = header_lines(mail)
    assert not [line for line in lines if line.lower().startswith(b"bcc:")]
    [to_index] = [i for i, line in enumerate(lines) if line.lower().startswith(b"to:")]
    following = lines[to_index + 1] if to_index + 1 < len(lines) else b""
    assert not following.startswith((b" ", b"\t")), "To header is folded over several lines"


async def test_marketing_carries_one_click_unsubscribe_and_transactional_does_not(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    activities = email_activities(database_url, ledger, mail_sink.port)
    confirmation = new_request()
    cross_sell = dataclasses.replace(
        new_request(), step="cross_sell", template="cross_sell", category="marketing"
    )
    await send(activities, confirmation)
    await send(activities, cross_sell)

    [transactional] = await settled_mails_for(mail_sink, confirmation.journey_id)
    [marketing] = await settled_mails_for(mail_sink, cross_sell.journey_id)
    assert transactional.message["List-Unsubscribe"] is None
    header = str(marketing.message["List-Unsubscribe"])
    assert header.startswith("<https://care.shop.example/u/")
    assert marketing.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The token in the header is signed for this customer, journey and purpose.
    token = urlsplit(header.strip("<>")).path.rsplit("/", 1)[1]
    claims = LinkSigner("test-link-secret-0123456789abcdef").verify(
        token, "unsubscribe", timedelta(days=1)
    )
    assert claims.customer_id == cross_sell.order.customer.id
    assert claims.journey_id == cross_sell.journey_id


async def test_consent_is_checked_when_sending_not_when_scheduling(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    activities = email_activities(database_url, ledger, mail_sink.port)
    consent = ConsentLedger(ledger.sessions, TEST_MARKS)
    # Both messages were planned while the customer still agreed...
    cross_sell = dataclasses.replace(
        new_request(), step="cross_sell", template="cross_sell", category="marketing"
    )
    # Another journey of the same customer (its own address).
    confirmation = new_request()
    customer_id = cross_sell.order.customer.id
    confirmation = dataclasses.replace(
        confirmation,
        order=dataclasses.replace(
            confirmation.order,
            customer=dataclasses.replace(confirmation.order.customer, id=customer_id),
        ),
    )
    assert await consent.allows(customer_id, Channel.EMAIL, "marketing")
    # ...then the customer opted out of marketing, before the send came due.
    await consent.record(
        customer_id, granted=False, channel=None, category="marketing", source="one_click"
    )

    refused = await send(activities, cross_sell)
    sent = await send(activities, confirmation)

    reason = "no consent: customer opted out of marketing"
    assert (refused.status, refused.detail) == (Delivery.UNAVAILABLE, reason)
    entry = await ledger.get(key_of(cross_sell))
    assert entry is not None
    assert (entry.status, entry.error) == (MessageStatus.SKIPPED, "unavailable: " + reason)
    assert await settled_mails_for(mail_sink, cross_sell.journey_id) == []
    # A retry answers from the ledger, still without sending.
    again = await send(activities, cross_sell)
    assert (again.status, again.detail) == (Delivery.UNAVAILABLE, reason)
    assert await settled_mails_for(mail_sink, cross_sell.journey_id) == []
    # Transactional messages need no marketing consent.
    assert sent.status == Delivery.SENT
    assert len(await settled_mails_for(mail_sink, confirmation.journey_id)) == 1


async def test_a_later_opt_in_for_the_channel_lets_marketing_through_again(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    activities = email_activities(database_url, ledger, mail_sink.port)
    consent = ConsentLedger(ledger.sessions, TEST_MARKS)
    cross_sell = dataclasses.replace(
        new_request(), step="cross_sell", template="cross_sell", category="marketing"
    )
    customer_id = cross_sell.order.customer.id
    await consent.record(customer_id, granted=False, channel=None, category=None, source="api")
    await consent.record(
        customer_id, granted=True, channel="email", category="marketing", source="api"
    )

    result = await send(activities, cross_sell)

    assert result.status == Delivery.SENT
    assert len(await settled_mails_for(mail_sink, cross_sell.journey_id)) == 1
