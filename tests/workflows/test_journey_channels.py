"""Channel choice and fallback in whole journeys: real SMTP sink, the Twilio fake
behind the official SDK, a real ledger and suppression list, virtual time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from engine.devstack.mail_sink import MailSink
from engine.devstack.twilio_fake import TwilioFake, new_account_sid, serve_twilio_fake
from engine.devstack.whatsapp_templates import DEV_WHATSAPP_TEMPLATES
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_engine, create_session_factory
from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, sent_steps, virtual_journeys
from workflows.contracts import Delivery
from workflows.state import StepOutcome
from workflows.vocabulary import Channel, EventType

TOKEN = "test-auth-token"


@dataclass
class Channels:
    journeys: VirtualJourneys
    twilio: TwilioFake
    suppressions: SuppressionList


@pytest.fixture(scope="module")
async def channels(
    mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Channels]:
    sid = new_account_sid()
    async with (
        serve_twilio_fake("127.0.0.1", 0, sid, TOKEN) as twilio,
        virtual_journeys(
            tmp_path_factory.mktemp("channels"),
            mail_sink,
            twilio_account_sid=sid,
            twilio_auth_token=TOKEN,
            twilio_from_number="+15005550006",
            twilio_whatsapp_from="+15005550007",
            twilio_api_base_url=twilio.base_url,
            # Outside WhatsApp's 24-hour window only an approved template may go.
            whatsapp_templates_file=DEV_WHATSAPP_TEMPLATES,
        ) as journeys,
    ):
        engine = create_engine(journeys.settings.resolved_database_url)
        yield Channels(journeys, twilio, SuppressionList(create_session_factory(engine)))
        await engine.dispose()


def _customer() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    # +49 1515 ... is a valid German mobile range; unique per test.
    return f"{tag}@example.test", f"+491515{int(tag, 16) % 10**7:07d}"


def _texts_to(twilio: TwilioFake, phone: str) -> list[str]:
    return [m.body for m in twilio.messages if m.to.removeprefix("whatsapp:") == phone]


async def test_delivery_updates_prefer_sms(channels: Channels) -> None:
    email, phone = _customer()
    journeys = channels.journeys
    handle = await journeys.start(domain_order(email=email, phone=phone))
    await journeys.event(handle, EventType.SHIPPED)
    await journeys.event(handle, EventType.OUT_FOR_DELIVERY)
    state = await journeys.until(handle, lambda s: len(s.sent) == 3)

    by_step = {m.step: m for m in state.sent}
    assert by_step["order_confirmation"].channel == Channel.EMAIL
    assert by_step["shipping_notice"].channel == Channel.EMAIL  # [email, sms]
    assert by_step["out_for_delivery"].channel == Channel.SMS  # [sms, whatsapp, email]
    [text] = _texts_to(channels.twilio, phone)
    assert "Aftercare" in text
    assert journeys.steps_mailed(handle.id) == ["order_confirmation", "shipping_notice"]
    await handle.cancel()


async def test_a_bounced_email_falls_back_to_sms_and_stays_suppressed(
    channels: Channels, mail_sink: MailSink
) -> None:
    email, phone = _customer()
    mail_sink.handler.refusals[email] = "550 5.1.1 no such user"
    journeys = channels.journeys
    handle = await journeys.start(domain_order(email=email, phone=phone))
    await journeys.event(handle, EventType.SHIPPED)
    state = await journeys.until(handle, lambda s: "shipping_notice" in s.steps)

    # The confirmation has only email: it bounced, and the journey went on.
    confirmation = state.steps["order_confirmation"]
    assert confirmation.outcome == StepOutcome.SKIPPED
    assert "bounced" in confirmation.detail
    assert "550" in confirmation.detail
    assert await channels.suppressions.is_suppressed("email", email)
    # The shipping notice skipped the suppressed address and went by SMS.
    notice = next(m for m in state.sent if m.step == "shipping_notice")
    assert notice.channel == Channel.SMS
    assert notice.status == Delivery.SENT
    assert len(_texts_to(channels.twilio, phone)) == 1
    assert journeys.mails(handle.id) == []
    await handle.cancel()


async def test_an_unsubscribed_number_bounces_to_the_next_channel(channels: Channels) -> None:
    email, phone = _customer()
    channels.twilio.unsubscribed.add(phone)
    journeys = channels.journeys
    handle = await journeys.start(domain_order(email=email, phone=phone))
    await journeys.event(handle, EventType.DELIVERED)
    state = await journeys.until(handle, lambda s: "delivered" in s.steps)

    delivered = next(m for m in state.sent if m.step == "delivered")
    # sms: 21610 -> suppressed; whatsapp: same refusal; then email.
    assert delivered.channel == Channel.EMAIL
    assert await channels.suppressions.is_suppressed("sms", phone)
    assert await channels.suppressions.is_suppressed("whatsapp", phone)
    assert _texts_to(channels.twilio, phone) == []
    assert "delivered" in journeys.steps_mailed(handle.id)
    await handle.cancel()


async def test_rate_limited_sms_is_retried_and_sent_once(channels: Channels) -> None:
    email, phone = _customer()
    journeys = channels.journeys
    handle = await journeys.start(domain_order(email=email, phone=phone))
    await journeys.until(handle, lambda s: "order_confirmation" in s.steps)
    channels.twilio.fail_next(status=429, retry_after=1)
    channels.twilio.fail_next(status=500)
    await journeys.event(handle, EventType.OUT_FOR_DELIVERY)
    state = await journeys.until(handle, lambda s: "out_for_delivery" in s.steps)
    sent = next(m for m in state.sent if m.step == "out_for_delivery")
    assert sent.channel == Channel.SMS
    assert len(_texts_to(channels.twilio, phone)) == 1
    await handle.cancel()


async def test_no_channel_reaches_the_customer_is_recorded(channels: Channels) -> None:
    journeys = channels.journeys
    handle = await journeys.start(domain_order(email="", phone=""))
    state = await journeys.until(handle, lambda s: "order_confirmation" in s.steps)
    record = state.steps["order_confirmation"]
    assert record.outcome == StepOutcome.SKIPPED
    assert record.detail == "undeliverable: email: no email address"
    assert sent_steps(state) == []
    await handle.cancel()
