"""Two attempts of one send never both deliver: each attempt claims the message's
ledger row as its owner, with a lease it renews while it works; a retry that finds
another attempt's live lease waits instead of sending. Real SMTP servers (one that
takes seconds per message), a real Twilio fake and a real ledger database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.activity import ActivityCancellationDetails
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.channels.base import DeliveryChannel
from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.send_message import (
    CLAIM_LEASE,
    DELIVERY_IN_PROGRESS,
    TRANSIENT_FAILURE,
    MessageActivities,
    claim_for,
)
from activities.sms.twilio_sender import TwilioConfig, TwilioSender
from engine.customers.consent import ConsentLedger
from engine.devstack.mail_sink import MailboxHandler, MailSink
from engine.devstack.twilio_fake import TwilioFake, new_account_sid, serve_twilio_fake
from engine.messaging.delivery_reports import STATUS_PATH
from engine.messaging.ledger import LedgerEntry, MessageLedger, idempotency_key
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.tables import MessageStatus
from engine.platform.http_server import serve_http
from engine.platform.links.tokens import LinkSigner
from engine.platform.settings import Settings
from engine.processes.http import build_http_app
from engine.processes.worker import build_channels
from tests.activities.test_send_message import email_activities, key_of, new_request, smtp_server
from tests.support.marks import TEST_MARKS
from tests.support.net import free_port
from tests.support.orders import domain_order
from workflows.contracts import Delivery, SendMessageInput, SentMessage
from workflows.vocabulary import Channel

TOKEN = "lease-test-auth-token"
FROM_NUMBER = "+15005550006"


class SlowHandler(MailboxHandler):
    """Takes ``seconds`` to answer each message's DATA, as a loaded server does."""

    def __init__(self, seconds: float) -> None:
        super().__init__(None)
        self.seconds = seconds

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        await asyncio.sleep(self.seconds)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def ledger(db_sessions: async_sessionmaker[AsyncSession]) -> MessageLedger:
    return MessageLedger(db_sessions)


def environment(attempt: int, *, timeout: timedelta = timedelta(seconds=30)) -> ActivityEnvironment:
    """The activity as Temporal's attempt number ``attempt`` of one activity runs it."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt, start_to_close_timeout=timeout)
    return env


async def send(
    activities: MessageActivities, request: SendMessageInput, attempt: int, **options: timedelta
) -> SentMessage:
    return await environment(attempt, **options).run(activities.send_message, request)


async def entry_of(ledger: MessageLedger, key: str) -> LedgerEntry:
    entry = await ledger.get(key)
    assert entry is not None
    return entry


async def test_a_retry_beside_a_live_attempt_waits_and_then_answers_from_the_ledger(
    database_url: str, ledger: MessageLedger
) -> None:
    request = new_request()
    async with smtp_server(SlowHandler(2.0)) as slow:
        activities = email_activities(database_url, ledger, slow.port)
        first = asyncio.create_task(send(activities, request, attempt=1))
        await asyncio.sleep(0.5)  # attempt 1 is handing the message over

        # Temporal started attempt 2 (attempt 1 outlived its timeout): it must wait.
        with pytest.raises(ApplicationError) as waiting:
            await send(activities, request, attempt=2)
        assert waiting.value.type == DELIVERY_IN_PROGRESS
        assert not waiting.value.non_retryable
        delay = waiting.value.next_retry_delay
        assert delay is not None
        assert timedelta(seconds=1) < delay <= CLAIM_LEASE + timedelta(seconds=1)

        sent = await first
        assert sent.status == Delivery.SENT
        third = await send(activities, request, attempt=3)

    assert (third.status, third.message_id) == (Delivery.SENT, sent.message_id)
    assert [m.message["Message-ID"] for m in slow.handler.received] == [sent.message_id]
    entry = await entry_of(ledger, key_of(request))
    # One attempt delivered; the waiting one and the one answered from the ledger
    # took no claim of their own.
    assert (entry.status, entry.attempts) == (MessageStatus.SENT, 1)


async def test_an_attempt_whose_lease_ran_out_is_taken_over(
    database_url: str, ledger: MessageLedger, mail_sink: MailSink
) -> None:
    request = new_request()
    claim = claim_for(request, request.order.customer.email)
    # An attempt claimed the row and died (no renewal): its lease has run out.
    long_ago = datetime.now(UTC) - 2 * CLAIM_LEASE
    await ledger.claim(claim, owner="run/1/1", lease=CLAIM_LEASE, now=long_ago)

    sent = await send(email_activities(database_url, ledger, mail_sink.port), request, attempt=2)

    assert sent.status == Delivery.SENT
    entry = await entry_of(ledger, key_of(request))
    assert (entry.status, entry.attempts) == (MessageStatus.SENT, 2)


async def test_an_attempt_that_cannot_start_in_time_gives_up_without_sending(
    database_url: str, ledger: MessageLedger
) -> None:
    # One connection, held by a slow message: the next one cannot be on its way
    # before its attempt's deadline (a 3 s timeout leaves it 2 s), so it gives up.
    settings = Settings(
        _env_file=None,
        smtp_max_connections=1,
        smtp_timeout_seconds=10,
        database_url=database_url,
        secret_key="test-link-secret-0123456789abcdef",
    )
    busy, waiting = new_request(), new_request()
    async with smtp_server(SlowHandler(4.0)) as slow:
        mailer = SmtpMailer(
            SmtpConfig.from_settings(settings.model_copy(update={"smtp_port": slow.port}))
        )
        activities = MessageActivities(
            ledger,
            SuppressionList(ledger.sessions),
            ConsentLedger(ledger.sessions, TEST_MARKS),
            build_channels(settings, mailer, None),
        )
        first = asyncio.create_task(send(activities, busy, attempt=1))
        await asyncio.sleep(0.3)
        with pytest.raises(ApplicationError) as gave_up:
            await send(activities, waiting, attempt=1, timeout=timedelta(seconds=3))
        assert (await first).status == Delivery.SENT
        await mailer.aclose()

    assert gave_up.value.type == TRANSIENT_FAILURE
    assert "before the attempt's deadline" in str(gave_up.value)
    assert [m.message["X-Aftercare-Journey"] for m in slow.handler.received] == [busy.journey_id]
    entry = await entry_of(ledger, key_of(waiting))
    # Still the message's to send, and free for the next attempt at once.
    assert (entry.status, entry.lease_until) == (MessageStatus.CLAIMED, None)


async def test_a_send_the_journey_cancels_before_it_is_on_its_way_is_recorded_skipped(
    database_url: str, ledger: MessageLedger
) -> None:
    settings = Settings(
        _env_file=None,
        smtp_max_connections=1,
        database_url=database_url,
        secret_key="test-link-secret-0123456789abcdef",
    )
    busy, moot = new_request(), new_request()
    async with smtp_server(SlowHandler(2.0)) as slow:
        mailer = SmtpMailer(
            SmtpConfig.from_settings(settings.model_copy(update={"smtp_port": slow.port}))
        )
        activities = MessageActivities(
            ledger,
            SuppressionList(ledger.sessions),
            ConsentLedger(ledger.sessions, TEST_MARKS),
            build_channels(settings, mailer, None),
        )
        first = asyncio.create_task(send(activities, busy, attempt=1))
        await asyncio.sleep(0.3)
        env = environment(1)
        cancelled = asyncio.create_task(env.run(activities.send_message, moot))
        await asyncio.sleep(0.5)  # waiting for the one connection
        env.cancel(ActivityCancellationDetails(cancel_requested=True))
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await first
        await mailer.aclose()

    entry = await entry_of(ledger, key_of(moot))
    assert entry.status == MessageStatus.SKIPPED
    assert entry.error == "cancelled: the journey no longer needed it"
    assert moot.journey_id not in [m.message["X-Aftercare-Journey"] for m in slow.handler.received]


class DropsTheFirstData(MailboxHandler):
    """Hangs up in the middle of the first message's DATA, as a server that crashes
    does: the sender cannot tell whether it was taken."""

    def __init__(self) -> None:
        super().__init__(None)
        self.dropped = 0

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if not self.dropped:
            self.dropped += 1
            assert server.transport is not None
            server.transport.close()
            return "421 4.3.0 going down"
        return await super().handle_DATA(server, session, envelope)


async def test_an_email_dropped_mid_data_is_retried_at_once_not_held_for_a_report(
    database_url: str, ledger: MessageLedger
) -> None:
    request = new_request()
    handler = DropsTheFirstData()
    async with smtp_server(handler) as crashing:
        activities = email_activities(database_url, ledger, crashing.port)

        with pytest.raises(ApplicationError) as dropped:
            await send(activities, request, attempt=1)
        # No delivery report will ever settle an email: waiting the report grace
        # (five minutes) would only hold the customer's message back.
        assert dropped.value.type == TRANSIENT_FAILURE
        assert dropped.value.next_retry_delay is None
        held = await entry_of(ledger, key_of(request))
        assert held.status == MessageStatus.CLAIMED

        retried = await send(activities, request, attempt=2)

    assert retried.status == Delivery.SENT
    assert handler.dropped == 1
    assert [m.message["Message-ID"] for m in handler.received] == [retried.message_id]


@dataclasses.dataclass
class TwilioRig:
    fake: TwilioFake
    ledger: MessageLedger
    channels: dict[Channel, DeliveryChannel]

    def activities(self, report_grace: timedelta) -> MessageActivities:
        return MessageActivities(
            self.ledger,
            SuppressionList(self.ledger.sessions),
            ConsentLedger(self.ledger.sessions, TEST_MARKS),
            self.channels,
            report_grace=report_grace,
        )


@pytest.fixture
async def slow_twilio(database_url: str, ledger: MessageLedger) -> AsyncIterator[TwilioRig]:
    """Twilio takes each text at once but answers 3 s later (after the sender gave up
    waiting), and reports on it 2 s after taking it, to the real HTTP app."""
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    app = build_http_app(
        ledger=ledger,
        suppressions=SuppressionList(ledger.sessions),
        consent=ConsentLedger(ledger.sessions, TEST_MARKS),
        signer=LinkSigner("test-link-secret-0123456789abcdef"),
        twilio_auth_token=TOKEN,
        public_base_url=public_url,
    )
    settings = Settings(
        _env_file=None, database_url=database_url, secret_key="test-link-secret-0123456789abcdef"
    )
    async with (
        serve_twilio_fake(
            "127.0.0.1",
            0,
            new_account_sid(),
            TOKEN,
            answer_delay_seconds=3.0,
            callback_delay_seconds=2.0,
        ) as fake,
        serve_http(app, "127.0.0.1", port),
    ):
        sender = TwilioSender(
            TwilioConfig(
                account_sid=fake.account_sid,
                auth_token=TOKEN,
                from_number=FROM_NUMBER,
                api_base_url=fake.base_url,
                status_callback_url=public_url + STATUS_PATH,
            ),
            timeout_seconds=1.0,
        )
        mailer = SmtpMailer(SmtpConfig.from_settings(settings))
        try:
            yield TwilioRig(fake, ledger, build_channels(settings, mailer, sender))
        finally:
            await sender.aclose()
            await mailer.aclose()


async def test_a_text_twilio_took_without_answering_waits_for_its_late_report(
    slow_twilio: TwilioRig,
) -> None:
    request = dataclasses.replace(
        new_request(), channel=Channel.SMS, order=domain_order(phone="+4915112345678")
    )
    key = idempotency_key(request.journey_id, request.step, request.iteration, "sms")
    activities = slow_twilio.activities(report_grace=timedelta(seconds=30))

    with pytest.raises(ApplicationError) as unanswered:
        await send(activities, request, attempt=1)
    assert unanswered.value.type == TRANSIENT_FAILURE
    # The retry is put off for the grace: Twilio's report may still come.
    assert unanswered.value.next_retry_delay == timedelta(seconds=30)
    held = await entry_of(slow_twilio.ledger, key)
    assert held.status == MessageStatus.CLAIMED
    assert held.lease_until is not None
    assert held.lease_until > datetime.now(UTC) + timedelta(seconds=20)

    # A retry that comes early anyway (a worker restart) waits too.
    with pytest.raises(ApplicationError) as early:
        await send(activities, request, attempt=2)
    assert early.value.type == DELIVERY_IN_PROGRESS

    # The report arrives ("minutes" later, here seconds) and settles the row.
    await slow_twilio.fake.wait_for_callbacks(1, seconds=30)
    [taken] = slow_twilio.fake.messages
    retried = await send(activities, request, attempt=3)

    assert (retried.status, retried.message_id) == (Delivery.SENT, taken.sid)
    assert len(slow_twilio.fake.messages) == 1  # never sent twice
    entry = await entry_of(slow_twilio.ledger, key)
    assert (entry.status, entry.provider_message_id, entry.attempts) == (
        MessageStatus.SENT,
        taken.sid,
        1,
    )
