"""Inbound texts (STOP / START / HELP) on the served app with a real database
(SQLite and PostgreSQL): the number is found through the keyed phone index,
consent is recorded per customer (sources ``sms_stop`` / ``sms_start``), the
suppression list follows, and the answer is TwiML. Unsigned, forged and replayed
requests change nothing. The last test runs the real send activity against the
Twilio fake: after STOP the next SMS step is not sent, after START it is."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from activities.channels.email import LinkBuilder
from activities.channels.sms import SmsChannel
from activities.send_message import MessageActivities
from activities.sms.rendering import SmsRenderer
from activities.sms.twilio_sender import TwilioConfig, TwilioSender
from engine.customers.consent import ConsentLedger
from engine.devstack.twilio_fake import new_account_sid, serve_twilio_fake
from engine.messaging.ledger import MessageLedger
from engine.messaging.phone_index import PhoneIndex, forget_customer, phone_index_key
from engine.messaging.suppressions import SuppressionList
from engine.platform.brand import default_brand
from engine.platform.database.connection import create_session_factory
from engine.platform.database.tables import (
    ConsentRecord,
    PhoneCustomer,
    SuppressedAddress,
    UsedLinkToken,
)
from engine.platform.twilio_signature import MAX_BODY_BYTES as MAX_TWILIO_BODY_BYTES
from tests.engine.customers.pages.support import SECRET, Served, served_app
from tests.support.marks import TEST_MARKS
from tests.support.orders import domain_order
from tests.support.raw_http import chunked, raw_request
from workflows.contracts import Delivery, SendMessageInput
from workflows.orders import Shipment
from workflows.vocabulary import Channel

AUTH_TOKEN = "inbound-test-auth-token"
PUBLIC_INBOUND_URL = "https://care.shop.example/twilio/inbound"
SHOP_NUMBER = "+15005550006"
BRAND = default_brand()


def new_number() -> str:
    return f"+491515{uuid.uuid4().int % 10**7:07d}"


def inbound(body: str, sender: str, sid: str | None = None) -> dict[str, str]:
    """The fields Twilio posts for an incoming message."""
    message_sid = sid or f"SM{uuid.uuid4().hex}"
    return {
        "ToCountry": "US",
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "SmsSid": message_sid,
        "SmsStatus": "received",
        "Body": body,
        "To": SHOP_NUMBER,
        "NumSegments": "1",
        "MessageSid": message_sid,
        "AccountSid": "AC" + "1" * 32,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


@pytest.fixture
def phones(db_sessions: async_sessionmaker[AsyncSession]) -> PhoneIndex:
    return PhoneIndex(db_sessions, phone_index_key(SECRET))


@pytest.fixture
async def served(db_engine: AsyncEngine, phones: PhoneIndex) -> AsyncIterator[Served]:
    async with served_app(
        db_engine, twilio_auth_token=AUTH_TOKEN, phones=phones, brand=BRAND
    ) as app:
        yield app


async def text_in(
    served: Served,
    fields: dict[str, str],
    *,
    token: str = AUTH_TOKEN,
    url: str = PUBLIC_INBOUND_URL,
) -> httpx.Response:
    signature = RequestValidator(token).compute_signature(url, fields)
    return await served.http.post(
        "/twilio/inbound", data=fields, headers={"X-Twilio-Signature": signature}
    )


def reply_of(response: httpx.Response) -> str | None:
    """The <Message> of a TwiML answer (None for an empty <Response/>)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1
    return messages[0].text if messages else None


async def sms_consent_rows(served: Served, customer: str) -> list[tuple[str | None, bool, str]]:
    return [(e.channel, e.granted, e.source) for e in await served.consent.history(customer)]


async def test_the_index_keeps_keyed_hashes_not_numbers(
    db_engine: AsyncEngine, phones: PhoneIndex
) -> None:
    number = new_number()
    await phones.remember(number, "cus-a")
    await phones.remember(f"whatsapp:{number}", "cus-a")  # the same number
    await phones.remember(f" {number} ", "cus-b")

    assert await phones.customers(number) == ["cus-a", "cus-b"]
    assert await phones.customers(f"whatsapp:{number}") == ["cus-a", "cus-b"]
    assert await phones.customers(new_number()) == []
    sessions = create_session_factory(db_engine)
    async with sessions() as session:
        stored = list(await session.scalars(select(PhoneCustomer.phone_hash)))
    assert len(stored) == 2
    assert all(len(value) == 64 and number.lstrip("+") not in value for value in stored)
    # Another secret gives other hashes: the table is useless without the key.
    other = PhoneIndex(sessions, phone_index_key("another-secret"))
    assert await other.customers(number) == []
    with pytest.raises(ValueError, match="phone"):
        await phones.remember("  ", "cus-a")

    async with sessions() as session, session.begin():
        assert await forget_customer(session, "cus-a") == 1
    assert await phones.customers(number) == ["cus-b"]


@pytest.mark.parametrize(
    "word", ["STOP", "stop", " Stop. ", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]
)
async def test_stop_opts_every_customer_of_the_number_out_of_sms(
    served: Served, phones: PhoneIndex, word: str
) -> None:
    number = new_number()
    await phones.remember(number, "cus-1")
    await phones.remember(number, "cus-2")

    response = await text_in(served, inbound(word, number))

    assert reply_of(response) is None  # Twilio confirms the opt-out itself
    for customer in ("cus-1", "cus-2"):
        assert await sms_consent_rows(served, customer) == [("sms", False, "sms_stop")]
        for category in ("relationship", "feedback", "marketing"):
            assert not await served.consent.allows(customer, "sms", category)
            assert await served.consent.allows(customer, "email", category)
            assert await served.consent.allows(customer, "whatsapp", category)
        assert await served.consent.allows(customer, "sms", "transactional")
    assert await served.suppressions.is_suppressed("sms", number)
    assert not await served.suppressions.is_suppressed("whatsapp", number)
    assert served.told == ["cus-1", "cus-2"]


async def test_stop_on_whatsapp_covers_whatsapp_too_and_start_restores(
    served: Served, phones: PhoneIndex
) -> None:
    number = new_number()
    await phones.remember(number, "cus-w")

    stop = await text_in(served, inbound("stop", f"whatsapp:{number}"))
    assert reply_of(stop) is None
    assert sorted(await sms_consent_rows(served, "cus-w")) == [
        ("sms", False, "sms_stop"),
        ("whatsapp", False, "sms_stop"),
    ]
    assert await served.suppressions.is_suppressed("sms", number)
    assert await served.suppressions.is_suppressed("whatsapp", number)

    start = await text_in(served, inbound("Start", f"whatsapp:{number}"))
    reply = reply_of(start)
    assert reply is not None
    assert BRAND.name in reply
    assert "STOP" in reply
    for channel in ("sms", "whatsapp"):
        assert await served.consent.allows("cus-w", channel, "marketing")
        assert not await served.suppressions.is_suppressed(channel, number)
    assert [row for row in await sms_consent_rows(served, "cus-w") if row[1]] == [
        ("sms", True, "sms_start"),
        ("whatsapp", True, "sms_start"),
    ]
    assert served.told == ["cus-w", "cus-w"]


@pytest.mark.parametrize("word", ["START", "yes", "UNSTOP"])
async def test_start_words_lift_the_suppression(
    served: Served, phones: PhoneIndex, word: str
) -> None:
    number = new_number()
    await phones.remember(number, "cus-s")
    reply_of(await text_in(served, inbound("STOP", number)))
    assert await served.suppressions.is_suppressed("sms", number)

    reply_of(await text_in(served, inbound(word, number)))

    assert not await served.suppressions.is_suppressed("sms", number)
    assert await served.consent.allows("cus-s", "sms", "feedback")


async def test_help_answers_with_contact_details_and_records_nothing(
    served: Served, phones: PhoneIndex
) -> None:
    number = new_number()
    await phones.remember(number, "cus-h")
    reply = reply_of(await text_in(served, inbound("help", number)))

    assert reply is not None
    assert BRAND.support_email in reply
    assert await served.count(ConsentRecord) == 0
    assert await served.count(SuppressedAddress) == 0
    # Any other text is answered with an empty TwiML and changes nothing either.
    assert reply_of(await text_in(served, inbound("Where is my parcel? stop it", number))) is None
    assert await served.count(ConsentRecord) == 0


async def test_stop_from_an_unknown_number_still_suppresses_it(served: Served) -> None:
    number = new_number()
    assert reply_of(await text_in(served, inbound("STOP", number))) is None
    assert await served.suppressions.is_suppressed("sms", number)
    assert await served.count(ConsentRecord) == 0
    assert served.told == []


async def test_a_replayed_signed_stop_is_not_acted_on_again(
    served: Served, phones: PhoneIndex
) -> None:
    number = new_number()
    await phones.remember(number, "cus-r")
    stop = inbound("STOP", number)
    reply_of(await text_in(served, stop))
    reply_of(await text_in(served, inbound("START", number)))
    rows = await served.count(ConsentRecord)

    # Someone replays the captured (validly signed) STOP after the customer's START.
    assert reply_of(await text_in(served, stop)) is None

    assert await served.count(ConsentRecord) == rows
    assert await served.consent.allows("cus-r", "sms", "marketing")
    assert not await served.suppressions.is_suppressed("sms", number)


async def test_unsigned_or_forged_requests_get_403_and_change_nothing(
    served: Served, phones: PhoneIndex, db_engine: AsyncEngine
) -> None:
    number = new_number()
    await phones.remember(number, "cus-f")
    fields = inbound("STOP", number)
    attempts = [
        await served.http.post("/twilio/inbound", data=fields),
        await text_in(served, fields, token="not-the-auth-token"),
        await text_in(served, fields, url="https://care.shop.example/twilio/status"),
        await served.http.post(
            "/twilio/inbound",
            data={**fields, "From": new_number()},
            headers={
                "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(
                    PUBLIC_INBOUND_URL, fields
                )
            },
        ),
    ]
    for response in attempts:
        assert response.status_code == 403
    assert await served.count(ConsentRecord) == 0
    assert await served.count(SuppressedAddress) == 0

    # Without an auth token configured nothing can be verified: refused as well.
    async with served_app(db_engine, twilio_auth_token=None, phones=phones) as unsigned:
        refused = await text_in(unsigned, fields)
        assert refused.status_code == 403
    assert await served.count(ConsentRecord) == 0


async def test_after_stop_the_next_sms_step_is_not_sent_and_after_start_it_is(
    db_engine: AsyncEngine, phones: PhoneIndex
) -> None:
    sessions = create_session_factory(db_engine)
    account = new_account_sid()
    number = new_number()
    order = domain_order(customer_id=f"cus-{uuid.uuid4().hex[:8]}", phone=number)
    journey_id = f"order-{order.order_id}"

    def sms(step: str, template: str, category: str) -> SendMessageInput:
        return SendMessageInput(
            journey_id=journey_id,
            step=step,
            template=template,
            category=category,
            channel=Channel.SMS,
            order=order,
            shipment=Shipment(carrier="DHL", tracking_number="00340434", tracking_url=""),
            focus_sku=order.items[0].sku,
            run_out_at=datetime(2025, 4, 1, tzinfo=UTC),
        )

    async with (
        serve_twilio_fake("127.0.0.1", 0, account, AUTH_TOKEN) as twilio,
        TwilioSender(
            TwilioConfig(
                account_sid=account,
                auth_token=AUTH_TOKEN,
                from_number=SHOP_NUMBER,
                api_base_url=twilio.base_url,
            )
        ) as sender,
        served_app(db_engine, twilio_auth_token=AUTH_TOKEN, phones=phones) as served,
    ):
        links = LinkBuilder(shop_url=BRAND.shop_url)
        channel = SmsChannel(sender, SmsRenderer(BRAND), links, phones=phones)
        activities = MessageActivities(
            MessageLedger(sessions),
            SuppressionList(sessions),
            ConsentLedger(sessions, TEST_MARKS),
            {Channel.SMS: channel},
        )

        async def send(request: SendMessageInput) -> Delivery:
            sent = await ActivityEnvironment().run(activities.send_message, request)
            return sent.status

        assert await send(sms("shipping_notice", "shipping_notice", "transactional")) == (
            Delivery.SENT
        )
        assert await phones.customers(number) == [order.customer.id]

        reply_of(await text_in(served, inbound("STOP", number)))
        assert await send(sms("feedback_request", "feedback_request", "feedback")) == (
            Delivery.UNAVAILABLE
        )
        texts = [m for m in twilio.messages if m.to == number]
        assert len(texts) == 1  # only the shipping notice went out

        reply_of(await text_in(served, inbound("START", number)))
        assert await send(sms("replenishment_reminder", "replenishment_reminder", "marketing")) == (
            Delivery.SENT
        )
        assert len([m for m in twilio.messages if m.to == number]) == 2


# --- a failure half-way loses nothing; Twilio's retry applies it -------------------


async def fault_on_insert(db_engine: AsyncEngine, table: str) -> None:
    """A real database fault: every INSERT into ``table`` fails until it is lifted."""
    async with db_engine.begin() as connection:
        if db_engine.dialect.name == "sqlite":
            await connection.exec_driver_sql(
                f"CREATE TRIGGER injected_fault BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
            )
        else:
            await connection.exec_driver_sql(
                "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$"
            )
            await connection.exec_driver_sql(
                f"CREATE TRIGGER injected_fault BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION injected_fault()"
            )


async def lift_fault(db_engine: AsyncEngine, table: str) -> None:
    async with db_engine.begin() as connection:
        if db_engine.dialect.name == "sqlite":
            await connection.exec_driver_sql("DROP TRIGGER injected_fault")
        else:
            await connection.exec_driver_sql(f"DROP TRIGGER injected_fault ON {table}")
            await connection.exec_driver_sql("DROP FUNCTION injected_fault()")


@pytest.mark.parametrize("failing_table", ["consent_events", "suppressions"])
async def test_a_stop_that_failed_half_way_is_applied_when_twilio_retries(
    served: Served, phones: PhoneIndex, db_engine: AsyncEngine, failing_table: str
) -> None:
    number = new_number()
    await phones.remember(number, "cus-retry-1")
    await phones.remember(number, "cus-retry-2")
    stop = inbound("STOP", number)

    await fault_on_insert(db_engine, failing_table)
    try:
        failed = await text_in(served, stop)
    finally:
        await lift_fault(db_engine, failing_table)

    # Twilio sees a failure, and nothing of the STOP was kept: not half of it,
    # and not the mark that would make the retry look like a replay.
    assert failed.status_code == 500
    assert await served.count(ConsentRecord) == 0
    assert await served.count(SuppressedAddress) == 0
    assert await served.count(UsedLinkToken) == 0

    # Twilio retries the very same request (same MessageSid, same signature).
    assert reply_of(await text_in(served, stop)) is None

    for customer in ("cus-retry-1", "cus-retry-2"):
        assert await sms_consent_rows(served, customer) == [("sms", False, "sms_stop")]
        assert not await served.consent.allows(customer, "sms", "marketing")
    assert await served.suppressions.is_suppressed("sms", number)
    # And it is still acted on once: a third delivery changes nothing.
    rows = await served.count(ConsentRecord)
    assert reply_of(await text_in(served, stop)) is None
    assert await served.count(ConsentRecord) == rows


# --- the signature header is checked, and the body capped, before parsing ----------


async def test_an_unsigned_text_is_refused_before_its_body_is_read(
    served: Served, phones: PhoneIndex
) -> None:
    number = new_number()
    await phones.remember(number, "cus-unread")
    # The body is announced but never sent: only a server that does not wait
    # for it can answer.
    answer = await raw_request(
        str(served.http.base_url),
        "POST",
        "/twilio/inbound",
        {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "2000"},
    )
    assert answer.status == 403
    assert await served.count(ConsentRecord) == 0
    assert await served.count(SuppressedAddress) == 0


async def test_an_oversized_text_is_refused_without_being_parsed(
    served: Served, phones: PhoneIndex
) -> None:
    number = new_number()
    await phones.remember(number, "cus-big")
    fields = {**inbound("STOP", number), "AddOns": "x" * (MAX_TWILIO_BODY_BYTES + 1)}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_INBOUND_URL, fields)
    body = urlencode(fields).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }

    # Announced: refused before a byte of it is read.
    announced = await raw_request(
        str(served.http.base_url),
        "POST",
        "/twilio/inbound",
        {**headers, "Content-Length": str(len(body))},
    )
    # Streamed without a length: refused once it grows past the cap.
    streamed = await raw_request(
        str(served.http.base_url),
        "POST",
        "/twilio/inbound",
        {**headers, "Transfer-Encoding": "chunked"},
        chunked(body[: len(body) // 2], body[len(body) // 2 :], last=False),
    )

    assert (announced.status, streamed.status) == (413, 413)
    assert await served.count(ConsentRecord) == 0
    assert not await served.suppressions.is_suppressed("sms", number)
    # A genuine text of the largest size Twilio sends is far below the cap.
    largest = {**inbound("STOP " + "é" * 1590, number), "MediaUrl0": "https://x.example/" * 10}
    assert len(urlencode(largest)) * 4 < MAX_TWILIO_BODY_BYTES
    assert reply_of(await text_in(served, largest)) is None
