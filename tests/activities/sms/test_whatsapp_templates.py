"""WhatsApp as WhatsApp works, through ``send_message`` and the Twilio fake with
WhatsApp's window rule on: approved templates (ContentSid + ContentVariables) outside
the 24-hour window, free-form text inside the window a customer's own message opened
(noted by the real inbound webhook), and error 63016 answered with the template or the
next channel, never with a suppressed number. SQLite."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.rendering.formatting import SUPPORTED_LOCALES
from activities.send_message import MessageActivities
from activities.sms.rendering import SMS_TEMPLATE_NAMES
from activities.sms.twilio_sender import TwilioConfig, TwilioSender
from activities.sms.whatsapp_templates import WhatsAppTemplates, WhatsAppTemplatesError
from engine.customers.consent import ConsentLedger
from engine.devstack.twilio_fake import TwilioFake, new_account_sid, serve_twilio_fake
from engine.devstack.whatsapp_templates import DEV_WHATSAPP_TEMPLATES
from engine.messaging.ledger import MessageLedger
from engine.messaging.phone_index import PhoneIndex, phone_index_key
from engine.messaging.suppressions import SuppressionList
from engine.messaging.whatsapp_windows import WhatsAppWindows
from engine.platform.brand import default_brand
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.worker import build_channels
from tests.engine.customers.pages.support import PUBLIC_BASE_URL, served_app
from tests.support.databases import sqlite_url
from tests.support.marks import TEST_MARKS
from tests.support.orders import domain_order
from workflows.contracts import Delivery, SendMessageInput, SentMessage
from workflows.vocabulary import Channel

TOKEN = "whatsapp-test-auth-token"
SHOP = "+15005550006"
SECRET = "whatsapp-test-secret-0123456789abcdef"
TEMPLATES = """
shipping_notice:
  en:
    content_sid: HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    variables:
      "1": "{{ first_name }}"
      "2": "{{ order.order_id }}"
  de:
    content_sid: HXbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
    variables:
      "1": "{{ first_name }}"
      "2": "{{ order.order_id }}"
"""


@dataclass
class Rig:
    twilio: TwilioFake
    activities: MessageActivities
    windows: WhatsAppWindows
    suppressions: SuppressionList
    database: str


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    templates = tmp_path / "whatsapp.yaml"
    templates.write_text(TEMPLATES)
    account = new_account_sid()
    engine = create_engine(database)
    sessions = create_session_factory(engine)
    async with serve_twilio_fake("127.0.0.1", 0, account, TOKEN, whatsapp_windows=True) as fake:
        settings = Settings(
            _env_file=None,
            database_url=database,
            secret_key=SecretStr(SECRET),
            twilio_account_sid=account,
            twilio_auth_token=SecretStr(TOKEN),
            twilio_whatsapp_from=SHOP,
            twilio_api_base_url=fake.base_url,
            whatsapp_templates_file=templates,
        )
        config = TwilioConfig.from_settings(settings)
        assert config is not None
        sender = TwilioSender(config)
        phones = PhoneIndex(sessions, phone_index_key(SECRET))
        ledger = MessageLedger(sessions)
        suppressions = SuppressionList(sessions)
        activities = MessageActivities(
            ledger,
            suppressions,
            ConsentLedger(sessions, TEST_MARKS),
            build_channels(
                settings, SmtpMailer(SmtpConfig.from_settings(settings)), sender, phones=phones
            ),
        )
        try:
            yield Rig(fake, activities, WhatsAppWindows(phones), suppressions, database)
        finally:
            await sender.aclose()
            await engine.dispose()


def whatsapp_request(phone: str, template: str = "shipping_notice") -> SendMessageInput:
    return SendMessageInput(
        journey_id=f"order-{uuid.uuid4().hex[:8]}",
        step=template,
        template=template,
        category="transactional",
        channel=Channel.WHATSAPP,
        order=domain_order(phone=phone, locale="de"),
    )


def new_number() -> str:
    return f"+491515{uuid.uuid4().int % 10**7:07d}"


async def send(rig: Rig, request: SendMessageInput) -> SentMessage:
    environment = ActivityEnvironment()
    # The journey's own attempt timeout (the test environment's default is 1 s).
    environment.info = dataclasses.replace(
        environment.info, start_to_close_timeout=timedelta(seconds=30)
    )
    return await environment.run(rig.activities.send_message, request)


async def test_outside_the_window_the_approved_template_is_sent(rig: Rig) -> None:
    phone = new_number()
    request = whatsapp_request(phone)
    sent = await send(rig, request)
    assert sent.status == Delivery.SENT
    [message] = rig.twilio.messages
    assert message.to == f"whatsapp:{phone}"
    assert "Body" not in message.params
    # The customer's language picks the template; its placeholders are filled.
    assert message.params["ContentSid"] == ["HXbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]
    variables = json.loads(message.params["ContentVariables"][0])
    assert variables == {"1": "Jane", "2": request.order.order_id}


async def test_inside_the_window_free_form_text_is_sent(rig: Rig) -> None:
    phone = new_number()
    rig.twilio.customer_wrote(phone)
    await rig.windows.opened(f"whatsapp:{phone}", datetime.now(UTC))
    sent = await send(rig, whatsapp_request(phone))
    assert sent.status == Delivery.SENT
    [message] = rig.twilio.messages
    assert "ContentSid" not in message.params
    assert "unterwegs" in message.params["Body"][0]


async def test_63016_falls_back_to_the_template_and_suppresses_nothing(rig: Rig) -> None:
    phone = new_number()
    # We believe the window open; WhatsApp's has closed (the fake saw no message).
    await rig.windows.opened(f"whatsapp:{phone}", datetime.now(UTC))
    sent = await send(rig, whatsapp_request(phone))
    assert sent.status == Delivery.SENT
    refused, accepted = rig.twilio.requests
    assert (refused.status_code, refused.answer["code"]) == (400, 63016)
    assert accepted.params["ContentSid"] == ["HXbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]
    assert not await rig.suppressions.is_suppressed("whatsapp", phone)


async def test_63016_without_a_template_goes_to_the_next_channel_unsuppressed(rig: Rig) -> None:
    phone = new_number()
    await rig.windows.opened(f"whatsapp:{phone}", datetime.now(UTC))
    sent = await send(rig, whatsapp_request(phone, "delivered"))  # no template configured
    assert sent.status == Delivery.UNAVAILABLE
    assert "63016" in sent.detail
    assert not await rig.suppressions.is_suppressed("whatsapp", phone)
    assert rig.twilio.messages == []


async def test_outside_the_window_without_a_template_nothing_is_tried(rig: Rig) -> None:
    phone = new_number()
    sent = await send(rig, whatsapp_request(phone, "delivered"))
    assert sent.status == Delivery.UNAVAILABLE
    assert "24-hour window" in sent.detail
    assert rig.twilio.requests == []
    assert not await rig.suppressions.is_suppressed("whatsapp", phone)


async def test_a_customers_whatsapp_message_opens_the_window(rig: Rig) -> None:
    phone = new_number()
    engine = create_engine(rig.database)
    phones = PhoneIndex(create_session_factory(engine), phone_index_key(SECRET))
    fields = {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "From": f"whatsapp:{phone}",
        "To": f"whatsapp:{SHOP}",
        "Body": "Where is my parcel?",
        "AccountSid": "AC" + "1" * 32,
        "ApiVersion": "2010-04-01",
    }
    try:
        async with served_app(engine, twilio_auth_token=TOKEN, phones=phones) as served:
            url = f"{PUBLIC_BASE_URL}/twilio/inbound"
            signature = RequestValidator(TOKEN).compute_signature(url, fields)
            response = await served.http.post(
                "/twilio/inbound", data=fields, headers={"X-Twilio-Signature": signature}
            )
            assert response.status_code == 200, response.text
    finally:
        await engine.dispose()
    assert await rig.windows.is_open(phone, datetime.now(UTC))
    rig.twilio.customer_wrote(phone)
    await send(rig, whatsapp_request(phone))
    [message] = rig.twilio.messages
    assert "Body" in message.params


def test_a_templates_file_with_a_bad_sid_names_the_place(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("delivered:\n  en:\n    content_sid: HX123\n")
    with pytest.raises(WhatsAppTemplatesError, match=r"delivered\.en\.content_sid"):
        WhatsAppTemplates.load(path, default_brand())


def test_the_dev_templates_cover_every_text_message() -> None:
    templates = WhatsAppTemplates.load(DEV_WHATSAPP_TEMPLATES, default_brand())
    for name in SMS_TEMPLATE_NAMES:
        for locale in SUPPORTED_LOCALES:
            found = templates.find(name, locale)
            assert found is not None
            assert found[1] == locale
