"""A text the provider accepted is never sent twice, even when the worker that sent it
died before recording it: Twilio's delivery report names the ledger row and records the
send. Real parts: the Twilio fake (posting signed reports), the served HTTP app, the
ledger on SQLite and PostgreSQL, and the send activity."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.testing import ActivityEnvironment

from activities.channels.base import DeliveryChannel
from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.handover import Handover
from activities.send_message import MessageActivities
from activities.sms.twilio_sender import TwilioConfig, TwilioSender
from engine.customers.consent import ConsentLedger
from engine.devstack.twilio_fake import TwilioFake, new_account_sid, serve_twilio_fake
from engine.messaging.delivery_reports import STATUS_PATH
from engine.messaging.ledger import LedgerEntry, MessageLedger, idempotency_key
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import MessageStatus
from engine.platform.http_server import serve_http
from engine.platform.links.tokens import LinkSigner
from engine.platform.settings import Settings
from engine.processes.http import build_http_app
from engine.processes.worker import build_channels
from tests.support.marks import TEST_MARKS
from tests.support.net import free_port
from tests.support.orders import domain_order
from workflows.contracts import Delivery, SendMessageInput, SentMessage
from workflows.vocabulary import Channel

TOKEN = "twilio-test-auth-token"
FROM_NUMBER = "+15005550006"
CUSTOMER = "+4915112345678"

# The SDK's own aiohttp client still uses aiohttp's deprecated BasicAuth; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)


class WorkerKilled(BaseException):
    """Stands for a SIGKILL: nothing after it runs, nothing handles it."""


class DiesAfterTheProviderAccepts:
    """The SMS channel of a worker killed right after Twilio took the message."""

    def __init__(self, channel: DeliveryChannel) -> None:
        self._channel = channel

    def address_of(self, request: SendMessageInput) -> str:
        return self._channel.address_of(request)

    def unavailable_reason(self, request: SendMessageInput) -> str:
        return self._channel.unavailable_reason(request)

    async def deliver(
        self, request: SendMessageInput, address: str, key: str, handover: Handover
    ) -> str:
        await self._channel.deliver(request, address, key, handover)
        raise WorkerKilled


@dataclass
class Service:
    fake: TwilioFake
    ledger: MessageLedger
    channels: dict[Channel, DeliveryChannel]

    def activities(
        self, channels: dict[Channel, DeliveryChannel] | None = None
    ) -> MessageActivities:
        return MessageActivities(
            self.ledger,
            SuppressionList(self.ledger.sessions),
            ConsentLedger(self.ledger.sessions, TEST_MARKS),
            channels or self.channels,
        )

    def dying_activities(self) -> MessageActivities:
        channels = dict(self.channels)
        channels[Channel.SMS] = DiesAfterTheProviderAccepts(channels[Channel.SMS])
        return self.activities(channels)

    async def entry(self, request: SendMessageInput) -> LedgerEntry:
        key = idempotency_key(request.journey_id, request.step, request.iteration, "sms")
        entry = await self.ledger.get(key)
        assert entry is not None
        return entry


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[Service]:
    """Ledger, HTTP app taking Twilio's reports, the fake, and the worker's channels."""
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    ledger = MessageLedger(sessions)
    # Reports are signed over the public URL: here, the app's own address.
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    http_app = build_http_app(
        ledger=ledger,
        suppressions=SuppressionList(sessions),
        consent=ConsentLedger(sessions, TEST_MARKS),
        signer=LinkSigner("test-link-secret-0123456789abcdef"),
        twilio_auth_token=TOKEN,
        public_base_url=public_url,
    )
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        secret_key="test-link-secret-0123456789abcdef",
        public_base_url=public_url,
    )
    async with (
        serve_twilio_fake("127.0.0.1", 0, new_account_sid(), TOKEN) as fake,
        serve_http(http_app, "127.0.0.1", port),
    ):
        sender = TwilioSender(
            TwilioConfig(
                account_sid=fake.account_sid,
                auth_token=TOKEN,
                from_number=FROM_NUMBER,
                api_base_url=fake.base_url,
                status_callback_url=public_url + STATUS_PATH,
            )
        )
        mailer = SmtpMailer(SmtpConfig.from_settings(settings))
        try:
            yield Service(fake, ledger, build_channels(settings, mailer, sender))
        finally:
            await sender.aclose()
            await mailer.aclose()
    await engine.dispose()


def text_request() -> SendMessageInput:
    journey_id = f"journey-{uuid.uuid4().hex[:12]}"
    return SendMessageInput(
        journey_id=journey_id,
        step="order_confirmation",
        template="order_confirmation",
        category="transactional",
        channel=Channel.SMS,
        order=domain_order(phone=CUSTOMER),
    )


async def send(activities: MessageActivities, request: SendMessageInput) -> SentMessage:
    return await ActivityEnvironment().run(activities.send_message, request)


async def test_a_text_whose_sender_died_after_twilio_took_it_is_not_sent_again(
    service: Service,
) -> None:
    request = text_request()
    with pytest.raises(WorkerKilled):
        await send(service.dying_activities(), request)
    [accepted] = service.fake.messages
    # Twilio's first report ("sent") reaches the HTTP app; the retry comes after it.
    await service.fake.wait_for_callbacks(1)

    retried = await send(service.activities(), request)

    assert retried.status == Delivery.SENT
    assert retried.message_id == accepted.sid
    await service.fake.wait_for_callbacks(2)
    assert [message.sid for message in service.fake.messages] == [accepted.sid]
    entry = await service.entry(request)
    assert (entry.status, entry.provider_message_id) == (MessageStatus.SENT, accepted.sid)
    assert entry.attempts == 1  # the retry found the row settled: no attempt of its own
    assert entry.delivery_status == "delivered"


async def test_a_living_sender_and_the_report_record_the_same_send(service: Service) -> None:
    # The report can beat the sender's own write; whichever lands first, one SID.
    request = text_request()

    sent = await send(service.activities(), request)
    await service.fake.wait_for_callbacks(2)

    assert sent.status == Delivery.SENT
    [accepted] = service.fake.messages
    assert sent.message_id == accepted.sid
    entry = await service.entry(request)
    assert (entry.status, entry.provider_message_id) == (MessageStatus.SENT, accepted.sid)
    assert entry.attempts == 1
    assert entry.delivery_status == "delivered"
