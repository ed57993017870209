"""TwilioSender, through the official SDK, against the local Twilio fake over HTTP.

The fake answers in Twilio's documented shapes and refuses undocumented fields; the
requests the sender makes and the answers it gets are also checked against Twilio's
published OpenAPI description (``../shared/twilio``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from activities.sms.twilio_sender import (
    PermanentSmsError,
    SmsReceipt,
    TransientSmsError,
    TwilioConfig,
    TwilioSender,
    ledger_key_in,
    parse_retry_after,
    status_callback_for,
)
from engine.devstack.twilio_fake import TwilioFake, new_account_sid, serve_twilio_fake
from engine.messaging.delivery_reports import LEDGER_KEY_PARAM
from engine.platform.settings import Settings
from tests.engine.devstack.test_twilio_fake import (
    CallbackReceiver,
    exchange_problems,
    load_spec,
    receiver,
)
from tests.support.net import free_port

TOKEN = "sender-test-token"
FROM_NUMBER = "+15005550006"
WHATSAPP_FROM = "+14155238886"
SERVICE = "MG" + "0123456789abcdef" * 2
CUSTOMER = "+4915112345678"
CALLBACK = "https://care.shop.example/twilio/status"

__all__ = ["receiver"]  # the callback receiver fixture, shared with the fake's tests

MakeSender = Callable[..., TwilioSender]

# The SDK's own aiohttp client still uses aiohttp's deprecated BasicAuth; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[TwilioFake]:
    async with serve_twilio_fake("127.0.0.1", 0, new_account_sid(), TOKEN) as served:
        yield served


@pytest.fixture
async def make_sender(fake: TwilioFake) -> AsyncIterator[MakeSender]:
    """Senders for the fake's account; every one made is closed afterwards."""
    made: list[TwilioSender] = []

    def make(**overrides: Any) -> TwilioSender:
        timeout = overrides.pop("timeout_seconds", 10.0)
        values: dict[str, Any] = {
            "account_sid": fake.account_sid,
            "auth_token": TOKEN,
            "from_number": FROM_NUMBER,
            "whatsapp_from": WHATSAPP_FROM,
            "api_base_url": fake.base_url,
            "status_callback_url": CALLBACK,
        }
        values.update(overrides)
        sender = TwilioSender(TwilioConfig(**values), timeout_seconds=timeout)
        made.append(sender)
        return sender

    yield make
    for sender in made:
        await sender.aclose()


# -- configuration ---------------------------------------------------------------------------


def _settings(monkeypatch: pytest.MonkeyPatch, **values: Any) -> Settings:
    for name in [n for n in os.environ if n.startswith("AFTERCARE_")]:
        monkeypatch.delenv(name)
    return Settings(_env_file=None, **values)


def test_no_account_sid_means_no_twilio(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TwilioConfig.from_settings(_settings(monkeypatch)) is None


def test_config_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    account = new_account_sid()
    settings = _settings(
        monkeypatch,
        twilio_account_sid=account,
        twilio_auth_token="s3cret",
        twilio_messaging_service_sid=SERVICE,
        twilio_from_number=FROM_NUMBER,
        twilio_whatsapp_from=WHATSAPP_FROM,
        twilio_api_base_url="http://127.0.0.1:9999",
        public_base_url="https://care.shop.example/",
    )
    config = TwilioConfig.from_settings(settings)
    assert config == TwilioConfig(
        account_sid=account,
        auth_token="s3cret",
        messaging_service_sid=SERVICE,
        from_number=FROM_NUMBER,
        whatsapp_from=WHATSAPP_FROM,
        api_base_url="http://127.0.0.1:9999",
        status_callback_url="https://care.shop.example/twilio/status",
    )
    assert "s3cret" not in repr(config)


def test_config_needs_a_token_and_a_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="auth_token"):
        TwilioConfig.from_settings(
            _settings(monkeypatch, twilio_account_sid=new_account_sid(), twilio_from_number="+1")
        )
    with pytest.raises(ValueError, match="sender"):
        TwilioConfig.from_settings(
            _settings(monkeypatch, twilio_account_sid=new_account_sid(), twilio_auth_token="t")
        )


# -- sending -----------------------------------------------------------------------------------


async def test_sms_is_accepted_with_exactly_the_fields_we_send(
    fake: TwilioFake, make_sender: MakeSender, spec: dict[str, Any]
) -> None:
    receipt = await make_sender().send(CUSTOMER, "Your parcel is on its way.")

    assert re.fullmatch(r"SM[0-9a-f]{32}", receipt.sid)
    assert receipt == SmsReceipt(sid=receipt.sid, status="queued", num_segments=1)
    [message] = fake.messages
    assert message.sid == receipt.sid
    assert message.params == {
        "To": [CUSTOMER],
        "From": [FROM_NUMBER],
        "Body": ["Your parcel is on its way."],
        "StatusCallback": [CALLBACK],
    }
    assert (message.to, message.from_, message.body) == (
        CUSTOMER,
        FROM_NUMBER,
        "Your parcel is on its way.",
    )
    assert message.status_callback == CALLBACK
    # The override really sent the request to the fake.
    assert [r.path for r in fake.requests] == [
        f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    ]
    assert exchange_problems(spec, fake.requests) == []


async def test_every_request_uses_documented_fields_and_gets_documented_answers(
    fake: TwilioFake, make_sender: MakeSender, spec: dict[str, Any]
) -> None:
    fake.unsubscribed.add("+4915100000001")
    plain = make_sender()
    by_service = make_sender(messaging_service_sid=SERVICE, from_number=None)
    no_callback = make_sender(status_callback_url=None)
    attempts = [
        plain.send(CUSTOMER, "SMS"),
        plain.send(CUSTOMER, "WhatsApp", whatsapp=True),
        plain.send(CUSTOMER, "€ Sonderangebot " * 20),
        by_service.send(CUSTOMER, "Service"),
        by_service.send(CUSTOMER, "Service WhatsApp", whatsapp=True),
        no_callback.send(CUSTOMER, "No callback"),
        plain.send("+4915100000001", "Unsubscribed"),
        plain.send("not-a-number", "Invalid"),
    ]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)

    assert [type(o).__name__ for o in outcomes] == [
        *["SmsReceipt"] * 6,
        "PermanentSmsError",
        "PermanentSmsError",
    ]
    assert len(fake.requests) == len(attempts)
    assert exchange_problems(spec, fake.requests) == []
    by_body = {m.body: m for m in fake.messages}
    assert by_body["Service"].params["MessagingServiceSid"] == [SERVICE]
    assert "From" not in by_body["Service"].params
    assert "StatusCallback" not in by_body["No callback"].params
    long_receipt = outcomes[2]
    assert isinstance(long_receipt, SmsReceipt)
    assert long_receipt.num_segments == 3  # 300 GSM characters, 20 of them two septets


async def test_whatsapp_uses_the_whatsapp_address_form(
    fake: TwilioFake, make_sender: MakeSender
) -> None:
    await make_sender().send(CUSTOMER, "Hallo", whatsapp=True)
    await make_sender(whatsapp_from=f"whatsapp:{WHATSAPP_FROM}").send(
        f"whatsapp:{CUSTOMER}", "Again", whatsapp=True
    )

    for message in fake.messages:
        assert message.params["To"] == [f"whatsapp:{CUSTOMER}"]
        assert message.params["From"] == [f"whatsapp:{WHATSAPP_FROM}"]


async def test_whatsapp_without_a_sender_is_permanent(make_sender: MakeSender) -> None:
    sender = make_sender(whatsapp_from=None)
    with pytest.raises(PermanentSmsError, match="WhatsApp"):
        await sender.send(CUSTOMER, "x", whatsapp=True)


# -- failures ----------------------------------------------------------------------------------


async def test_wrong_token_is_permanent(fake: TwilioFake, make_sender: MakeSender) -> None:
    with pytest.raises(PermanentSmsError) as caught:
        await make_sender(auth_token="wrong").send(CUSTOMER, "x")
    assert caught.value.code == 20003
    assert fake.requests[-1].status_code == 401
    assert fake.messages == []


async def test_invalid_number_is_permanent_21211(make_sender: MakeSender) -> None:
    with pytest.raises(PermanentSmsError) as caught:
        await make_sender().send("0151 1234", "x")
    assert caught.value.code == 21211
    assert "not a valid phone number" in str(caught.value)


async def test_unsubscribed_recipient_is_permanent_21610(
    fake: TwilioFake, make_sender: MakeSender
) -> None:
    fake.unsubscribed.add(CUSTOMER)
    with pytest.raises(PermanentSmsError) as caught:
        await make_sender().send(CUSTOMER, "x")
    assert caught.value.code == 21610


@pytest.mark.parametrize("code", [21614, 63003, 63016])
async def test_address_codes_are_permanent(
    fake: TwilioFake, make_sender: MakeSender, code: int
) -> None:
    fake.fail_next(status=400, code=code, message="refused")
    with pytest.raises(PermanentSmsError) as caught:
        await make_sender().send(CUSTOMER, "x", whatsapp=code != 21614)
    assert caught.value.code == code


async def test_rate_limit_is_transient_with_retry_after(
    fake: TwilioFake, make_sender: MakeSender
) -> None:
    fake.fail_next(status=429, retry_after=2)
    sender = make_sender()
    with pytest.raises(TransientSmsError) as caught:
        await sender.send(CUSTOMER, "x")
    assert caught.value.retry_after_seconds == 2.0
    assert "429" in str(caught.value)
    # The forced answer was used up: the retry goes through.
    assert (await sender.send(CUSTOMER, "x")).status == "queued"


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_transient(
    fake: TwilioFake, make_sender: MakeSender, status: int
) -> None:
    fake.fail_next(status=status)
    with pytest.raises(TransientSmsError) as caught:
        await make_sender().send(CUSTOMER, "x")
    assert caught.value.retry_after_seconds is None


async def test_retry_after_belongs_to_its_own_send(
    fake: TwilioFake, make_sender: MakeSender
) -> None:
    fake.fail_next(status=429, retry_after=7)
    fake.fail_next(status=429, retry_after=3)
    sender = make_sender()
    outcomes = await asyncio.gather(
        *(sender.send(CUSTOMER, f"n{i}") for i in range(6)), return_exceptions=True
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 2
    assert all(isinstance(f, TransientSmsError) for f in failures)
    waits = {f.retry_after_seconds for f in failures if isinstance(f, TransientSmsError)}
    assert waits == {3.0, 7.0}
    assert len(fake.messages) == 4


async def test_connection_refused_is_transient(make_sender: MakeSender) -> None:
    sender = make_sender(api_base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientSmsError, match="cannot reach Twilio"):
        await sender.send(CUSTOMER, "x")


async def test_silence_is_a_transient_timeout(make_sender: MakeSender) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sender = make_sender(api_base_url=f"http://127.0.0.1:{port}", timeout_seconds=0.3)
        with pytest.raises(TransientSmsError, match="did not answer"):
            await sender.send(CUSTOMER, "x")
        await sender.aclose()
    finally:
        server.close()
        await server.wait_closed()


def test_retry_after_accepts_seconds_and_dates() -> None:
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("2", now) == 2.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None


def test_errors_survive_pickling() -> None:
    import pickle

    permanent = pickle.loads(pickle.dumps(PermanentSmsError(21610, "unsubscribed")))
    transient = pickle.loads(pickle.dumps(TransientSmsError("busy", 2.0)))
    assert (permanent.code, permanent.message) == (21610, "unsubscribed")
    assert (transient.message, transient.retry_after_seconds) == ("busy", 2.0)


# -- base URL and session ----------------------------------------------------------------------


async def test_edge_and_region_from_the_environment_do_not_escape_the_override(
    fake: TwilioFake, make_sender: MakeSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    receipt = await make_sender().send(CUSTOMER, "x")
    assert fake.messages[-1].sid == receipt.sid


async def test_aclose_closes_the_http_session(make_sender: MakeSender) -> None:
    sender = make_sender()
    await sender.send(CUSTOMER, "x")
    http_client = sender._twilio.http_client
    assert not http_client.session.closed

    await sender.aclose()

    assert http_client.session.closed
    # A later send opens a new session.
    assert (await sender.send(CUSTOMER, "y")).status == "queued"


# -- status callbacks --------------------------------------------------------------------------


async def test_status_callbacks_reach_our_url_signed(
    fake: TwilioFake, make_sender: MakeSender, receiver: CallbackReceiver
) -> None:
    fake.undeliverable.add("+4915100000002")
    sender = make_sender(status_callback_url=receiver.url)
    delivered = await sender.send(CUSTOMER, "x")
    undelivered = await sender.send("+4915100000002", "y")
    await fake.wait_for_callbacks(4)

    by_sid: dict[str, list[str]] = {}
    validator = RequestValidator(TOKEN)
    for callback in receiver.received:
        assert validator.validate(callback.url, callback.params, callback.signature)
        forged = {**callback.params, "MessageStatus": "read"}
        assert not validator.validate(callback.url, forged, callback.signature)
        by_sid.setdefault(callback.params["MessageSid"], []).append(
            callback.params["MessageStatus"]
        )
    assert by_sid == {
        delivered.sid: ["sent", "delivered"],
        undelivered.sid: ["sent", "undelivered"],
    }
    [error] = [c.params["ErrorCode"] for c in receiver.received if "ErrorCode" in c.params]
    assert error == "30003"


async def test_status_callbacks_name_the_ledger_row_of_the_message(
    fake: TwilioFake, make_sender: MakeSender, receiver: CallbackReceiver
) -> None:
    key = "journey-7f3a/shipping_notice/0/sms"
    sender = make_sender(status_callback_url=receiver.url)
    receipt = await sender.send(CUSTOMER, "x", ledger_key=key)
    await fake.wait_for_callbacks(2)

    validator = RequestValidator(TOKEN)
    for callback in receiver.received:
        assert callback.params["MessageSid"] == receipt.sid
        assert parse_qs(urlsplit(callback.url).query) == {LEDGER_KEY_PARAM: [key]}
        # Twilio signs the URL with its query: the key cannot be changed on the way.
        assert validator.validate(callback.url, callback.params, callback.signature)
        renamed = callback.url.replace("journey-7f3a", "journey-0000")
        assert not validator.validate(renamed, callback.params, callback.signature)


def test_the_ledger_key_joins_a_callback_url_query_and_replaces_an_old_one() -> None:
    base = "https://care.shop.example/twilio/status?tenant=eu&ledger_key=stale"

    named = status_callback_for(base, "j-1/thank_you/0/sms")

    assert parse_qs(urlsplit(named).query) == {
        "tenant": ["eu"],
        LEDGER_KEY_PARAM: ["j-1/thank_you/0/sms"],
    }
    assert status_callback_for(base, None) == base
    assert ledger_key_in(named) == "j-1/thank_you/0/sms"
    assert ledger_key_in("https://care.shop.example/twilio/status?tenant=eu") is None
    assert ledger_key_in(None) is None
