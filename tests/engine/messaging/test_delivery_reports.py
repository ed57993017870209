"""Twilio status callbacks against the served HTTP app, with a real ledger (SQLite and
PostgreSQL): signatures over the public URL, out-of-order reports, suppressions."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from activities.sms.twilio_sender import status_callback_for
from engine.customers.consent import ConsentLedger
from engine.messaging.ledger import Claim, LedgerEntry, MessageLedger
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_session_factory
from engine.platform.database.tables import EngagementEvent, MessageStatus
from engine.platform.http_server import HttpServerError, serve_http
from engine.platform.links.tokens import LinkSigner
from engine.platform.twilio_signature import MAX_BODY_BYTES as MAX_TWILIO_BODY_BYTES
from engine.processes.http import build_http_app
from tests.support.marks import TEST_MARKS
from tests.support.net import free_port
from tests.support.raw_http import chunked, raw_request

AUTH_TOKEN = "twilio-test-auth-token"
# What Twilio calls: a proxy in front of us, under a path prefix, on another host
# and scheme than the socket the app listens on.
PUBLIC_BASE_URL = "https://hooks.shop.example/aftercare"
STATUS_PATH = "/twilio/status"
PUBLIC_STATUS_URL = PUBLIC_BASE_URL + STATUS_PATH
CUSTOMER_NUMBER = "+15005550006"


def signature(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    computed: str = RequestValidator(token).compute_signature(url, params)
    return computed


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15005550001",
        "To": CUSTOMER_NUMBER,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        **extra,
    }


@dataclass
class Harness:
    http: httpx.AsyncClient
    ledger: MessageLedger
    suppressions: SuppressionList
    internal_url: str

    async def post_status(
        self,
        params: dict[str, str],
        *,
        signed_params: dict[str, str] | None = None,
        signed_url: str = PUBLIC_STATUS_URL,
        token: str = AUTH_TOKEN,
        query: str = "",
    ) -> httpx.Response:
        """POST a callback signed as Twilio would sign it (or as told to get it wrong)."""
        headers = {
            "X-Twilio-Signature": signature(
                signed_url + query, params if signed_params is None else signed_params, token
            )
        }
        return await self.http.post(STATUS_PATH + query, data=params, headers=headers)

    async def claimed_sms(self, recipient: str = CUSTOMER_NUMBER) -> Claim:
        """A row claimed by a send that has not recorded its outcome (yet, or ever:
        its worker may have died)."""
        claim = Claim(
            journey_id=f"journey-{uuid.uuid4().hex[:10]}",
            step="shipping_notice",
            iteration=0,
            channel="whatsapp" if recipient.startswith("whatsapp:") else "sms",
            template="shipping_notice",
            recipient=recipient,
        )
        await self.ledger.claim(claim)
        return claim

    async def sent_sms(self, recipient: str = CUSTOMER_NUMBER) -> tuple[Claim, str]:
        claim = await self.claimed_sms(recipient)
        sid = f"SM{uuid.uuid4().hex}"
        await self.ledger.mark_sent(claim.key, provider_message_id=sid, sent_at=datetime.now(UTC))
        return claim, sid

    async def entry(self, claim: Claim) -> LedgerEntry:
        entry = await self.ledger.get(claim.key)
        assert entry is not None
        return entry


async def serve(db_engine: AsyncEngine, token: str | None) -> AsyncIterator[Harness]:
    sessions = create_session_factory(db_engine)
    ledger = MessageLedger(sessions)
    suppressions = SuppressionList(sessions)
    app = build_http_app(
        ledger=ledger,
        suppressions=suppressions,
        consent=ConsentLedger(sessions, TEST_MARKS),
        signer=LinkSigner("test-link-secret"),
        twilio_auth_token=token,
        public_base_url=PUBLIC_BASE_URL,
    )
    async with (
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http,
    ):
        yield Harness(http, ledger, suppressions, server.url + STATUS_PATH)


@pytest.fixture
async def harness(db_engine: AsyncEngine) -> AsyncIterator[Harness]:
    async for served in serve(db_engine, AUTH_TOKEN):
        yield served


@pytest.fixture
async def tokenless(db_engine: AsyncEngine) -> AsyncIterator[Harness]:
    async for served in serve(db_engine, None):
        yield served


async def test_health(harness: Harness) -> None:
    response = await harness.http.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok"
    assert not harness.internal_url.endswith(":0" + STATUS_PATH)


async def test_a_signed_callback_updates_the_row(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()

    response = await harness.post_status(status_params(sid, "delivered"))

    assert response.status_code == 204
    entry = await harness.entry(claim)
    assert entry.delivery_status == "delivered"
    assert entry.delivery_updated_at is not None
    assert entry.error is None
    assert not await harness.suppressions.is_suppressed("sms", CUSTOMER_NUMBER)


async def test_a_callback_url_with_a_query_string_is_signed_with_it(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()
    response = await harness.post_status(status_params(sid, "sent"), query="?journey=j-1&n=2")
    assert response.status_code == 204
    assert (await harness.entry(claim)).delivery_status == "sent"


def naming(claim: Claim) -> str:
    """The query our sender puts on the StatusCallback URL of this claim's message."""
    return "?" + urlsplit(status_callback_for(PUBLIC_STATUS_URL, claim.key)).query


async def test_a_report_naming_a_claimed_row_records_the_send(harness: Harness) -> None:
    # Twilio took the message, then the worker died before writing that down.
    claim = await harness.claimed_sms()
    sid = f"SM{uuid.uuid4().hex}"

    response = await harness.post_status(status_params(sid, "sent"), query=naming(claim))

    assert response.status_code == 204
    entry = await harness.entry(claim)
    assert entry.status == MessageStatus.SENT
    assert entry.provider_message_id == sid
    assert entry.sent_at is not None
    assert entry.delivery_status == "sent"


async def test_a_failed_report_also_says_the_message_was_accepted(harness: Harness) -> None:
    claim = await harness.claimed_sms()
    sid = f"SM{uuid.uuid4().hex}"

    response = await harness.post_status(
        status_params(sid, "undelivered", ErrorCode="30003"), query=naming(claim)
    )

    assert response.status_code == 204
    entry = await harness.entry(claim)
    assert (entry.status, entry.provider_message_id) == (MessageStatus.SENT, sid)
    assert entry.delivery_status == "undelivered"


async def test_a_report_naming_a_recorded_row_keeps_the_recorded_send(harness: Harness) -> None:
    claim, recorded_sid = await harness.sent_sms()
    before = await harness.entry(claim)
    # A second copy's report (sent again in the residual window) names the same row.
    other_sid = f"SM{uuid.uuid4().hex}"

    response = await harness.post_status(status_params(other_sid, "sent"), query=naming(claim))

    assert response.status_code == 200  # acknowledged: its SID is no row's
    entry = await harness.entry(claim)
    assert entry.provider_message_id == recorded_sid
    assert entry.sent_at == before.sent_at
    assert entry.delivery_status is None


async def test_a_report_whose_row_name_was_changed_is_refused(harness: Harness) -> None:
    named, other = await harness.claimed_sms(), await harness.claimed_sms()
    params = status_params(f"SM{uuid.uuid4().hex}", "sent")
    headers = {"X-Twilio-Signature": signature(PUBLIC_STATUS_URL + naming(named), params)}

    response = await harness.http.post(STATUS_PATH + naming(other), data=params, headers=headers)

    assert response.status_code == 403
    for claim in (named, other):
        assert (await harness.entry(claim)).status == MessageStatus.CLAIMED


async def test_a_tampered_body_is_refused_and_changes_nothing(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()
    before = await harness.entry(claim)
    signed = status_params(sid, "delivered")
    tampered = status_params(sid, "undelivered", ErrorCode="21610")

    response = await harness.post_status(tampered, signed_params=signed)

    assert response.status_code == 403
    assert await harness.entry(claim) == before
    assert await harness.suppressions.entries() == []


async def test_an_added_field_breaks_the_signature(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()
    signed = status_params(sid, "undelivered")
    response = await harness.post_status({**signed, "ErrorCode": "21610"}, signed_params=signed)
    assert response.status_code == 403
    assert (await harness.entry(claim)).delivery_status is None
    assert await harness.suppressions.entries() == []


async def test_a_forged_signature_is_refused(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()
    response = await harness.post_status(
        status_params(sid, "delivered"), token="someone-elses-token"
    )
    assert response.status_code == 403
    assert (await harness.entry(claim)).delivery_status is None


async def test_a_missing_or_garbage_signature_is_refused(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()
    params = status_params(sid, "delivered")
    missing = await harness.http.post(STATUS_PATH, data=params)
    garbage = await harness.http.post(
        STATUS_PATH, data=params, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    )
    as_json = await harness.http.post(
        STATUS_PATH,
        json=params,
        headers={"X-Twilio-Signature": signature(PUBLIC_STATUS_URL, params)},
    )
    assert (missing.status_code, garbage.status_code, as_json.status_code) == (403, 403, 403)
    assert (await harness.entry(claim)).delivery_status is None


async def test_a_signature_over_the_internal_url_is_refused(harness: Harness) -> None:
    # Twilio signs the URL it called (the public one); a signature over the address
    # this process listens on proves nothing about Twilio.
    claim, sid = await harness.sent_sms()
    response = await harness.post_status(
        status_params(sid, "delivered"), signed_url=harness.internal_url
    )
    assert response.status_code == 403
    assert (await harness.entry(claim)).delivery_status is None


async def test_without_an_auth_token_every_callback_is_refused(tokenless: Harness) -> None:
    claim, sid = await tokenless.sent_sms()
    params = status_params(sid, "delivered")
    for token in (AUTH_TOKEN, ""):
        response = await tokenless.http.post(
            STATUS_PATH,
            data=params,
            headers={"X-Twilio-Signature": signature(PUBLIC_STATUS_URL, params, token or "x")},
        )
        assert response.status_code == 403
    assert (await tokenless.entry(claim)).delivery_status is None
    assert (await tokenless.http.get("/healthz")).status_code == 200


async def test_out_of_order_callbacks_keep_delivered(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()

    assert (await harness.post_status(status_params(sid, "delivered"))).status_code == 204
    assert (await harness.post_status(status_params(sid, "sent"))).status_code == 204
    assert (await harness.post_status(status_params(sid, "queued"))).status_code == 204

    assert (await harness.entry(claim)).delivery_status == "delivered"


async def test_callbacks_arriving_together_end_at_delivered(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()
    statuses = ["queued", "sent", "delivered", "sent", "queued", "sending"]
    responses = await asyncio.gather(
        *(harness.post_status(status_params(sid, status)) for status in statuses)
    )
    assert {response.status_code for response in responses} == {204}
    assert (await harness.entry(claim)).delivery_status == "delivered"


async def test_error_21610_suppresses_the_number(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()

    response = await harness.post_status(status_params(sid, "undelivered", ErrorCode="21610"))

    assert response.status_code == 204
    entry = await harness.entry(claim)
    assert entry.delivery_status == "undelivered"
    assert entry.error is not None
    assert "21610" in entry.error
    assert await harness.suppressions.is_suppressed("sms", CUSTOMER_NUMBER)
    assert not await harness.suppressions.is_suppressed("whatsapp", CUSTOMER_NUMBER)
    [suppression] = await harness.suppressions.entries()
    assert suppression.reason.startswith("unsubscribed (Twilio 21610)")
    assert sid in suppression.reason

    # Twilio calling again changes nothing more.
    again = await harness.post_status(status_params(sid, "undelivered", ErrorCode="21610"))
    assert again.status_code == 204
    assert len(await harness.suppressions.entries()) == 1


@pytest.mark.parametrize("code", ["30005", "30006"])
async def test_unknown_numbers_and_landlines_are_suppressed(harness: Harness, code: str) -> None:
    _, sid = await harness.sent_sms()
    response = await harness.post_status(status_params(sid, "undelivered", ErrorCode=code))
    assert response.status_code == 204
    assert await harness.suppressions.is_suppressed("sms", CUSTOMER_NUMBER)


async def test_a_whatsapp_number_is_suppressed_on_whatsapp(harness: Harness) -> None:
    whatsapp = f"whatsapp:{CUSTOMER_NUMBER}"
    _, sid = await harness.sent_sms(whatsapp)
    params = status_params(sid, "failed", ErrorCode="21610", To=whatsapp)

    assert (await harness.post_status(params)).status_code == 204

    assert await harness.suppressions.is_suppressed("whatsapp", CUSTOMER_NUMBER)
    assert not await harness.suppressions.is_suppressed("sms", CUSTOMER_NUMBER)


async def test_other_errors_are_recorded_but_suppress_nothing(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()
    # 30003: handset unreachable (switched off): worth trying again another day.
    response = await harness.post_status(status_params(sid, "undelivered", ErrorCode="30003"))
    assert response.status_code == 204
    entry = await harness.entry(claim)
    assert entry.delivery_status == "undelivered"
    assert entry.error == "delivery error 30003"
    assert await harness.suppressions.entries() == []


async def test_an_unknown_message_sid_is_acknowledged(harness: Harness) -> None:
    claim, _ = await harness.sent_sms()

    response = await harness.post_status(status_params("SMunknown", "delivered"))

    assert response.status_code == 200
    assert (
        await harness.ledger.record_delivery_status("SMunknown", "sent", None, datetime.now(UTC))
        is None
    )
    assert (await harness.entry(claim)).delivery_status is None


async def test_an_unknown_sid_with_21610_still_suppresses_the_number(harness: Harness) -> None:
    # The report is signed by Twilio: the number opted out whatever we know of the message.
    response = await harness.post_status(status_params("SMunknown", "failed", ErrorCode="21610"))
    assert response.status_code == 200
    assert await harness.suppressions.is_suppressed("sms", CUSTOMER_NUMBER)


async def test_a_status_we_do_not_know_is_acknowledged_and_ignored(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()
    response = await harness.post_status(status_params(sid, "partially_delivered"))
    assert response.status_code == 200
    assert (await harness.entry(claim)).delivery_status is None


async def test_a_signed_callback_without_sid_is_a_bad_request(harness: Harness) -> None:
    response = await harness.post_status({"MessageStatus": "delivered"})
    assert response.status_code == 400


async def test_only_post_reaches_the_callback(harness: Harness) -> None:
    assert (await harness.http.get(STATUS_PATH)).status_code == 405
    assert (await harness.http.post("/healthz")).status_code == 405


async def test_a_taken_port_is_an_error_not_the_end_of_the_loop() -> None:
    app = build_http_app(
        ledger=None,  # type: ignore[arg-type]  # never reached
        suppressions=None,  # type: ignore[arg-type]
        consent=None,  # type: ignore[arg-type]
        signer=LinkSigner("test-link-secret"),
        twilio_auth_token=None,
        public_base_url=PUBLIC_BASE_URL,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HttpServerError):
            async with serve_http(app, "127.0.0.1", port):
                pytest.fail("the server must not start")
    # The loop still runs, and a free port works.
    port = free_port()
    async with (
        serve_http(app, "127.0.0.1", port) as server,
        httpx.AsyncClient(trust_env=False) as http,
    ):
        assert server.port == port
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(trust_env=False) as http:
            await http.get(f"http://127.0.0.1:{port}/healthz")


# --- the signature header is checked, and the body capped, before parsing ----------


@pytest.mark.parametrize("token", [AUTH_TOKEN, None], ids=["configured", "no_auth_token"])
async def test_a_callback_without_a_signature_is_refused_before_its_body_is_read(
    db_engine: AsyncEngine, token: str | None
) -> None:
    async for harness in serve(db_engine, token):
        claim, _sid = await harness.sent_sms()
        # The body is announced but never sent: only a server that refuses the
        # request without waiting for it can answer.
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "4000"}
        if token is None:
            # Nothing can be verified without the auth token, signed or not.
            headers["X-Twilio-Signature"] = signature(PUBLIC_STATUS_URL, {})
        answer = await raw_request(str(harness.http.base_url), "POST", STATUS_PATH, headers)
        assert answer.status == 403
        assert (await harness.entry(claim)).delivery_status is None


async def test_an_oversized_callback_is_refused_without_being_parsed(harness: Harness) -> None:
    claim, sid = await harness.sent_sms()
    # Genuinely signed, and it would suppress the number, were it read.
    params = status_params(
        sid, "undelivered", ErrorCode="21610", Padding="x" * MAX_TWILIO_BODY_BYTES
    )
    body = urlencode(params).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature(PUBLIC_STATUS_URL, params),
    }
    base = str(harness.http.base_url)

    announced = await raw_request(
        base, "POST", STATUS_PATH, {**headers, "Content-Length": str(len(body))}
    )
    streamed = await raw_request(
        base,
        "POST",
        STATUS_PATH,
        {**headers, "Transfer-Encoding": "chunked"},
        chunked(body[:1000], body[1000:], last=False),
    )

    assert (announced.status, streamed.status) == (413, 413)
    assert (await harness.entry(claim)).delivery_status is None
    assert await harness.suppressions.entries() == []
    # The same report at its real size goes through.
    del params["Padding"]
    assert (await harness.post_status(params)).status_code == 204
    assert await harness.suppressions.is_suppressed("sms", CUSTOMER_NUMBER)


async def test_final_reports_are_the_messages_engagement_once(harness: Harness) -> None:
    delivered, delivered_sid = await harness.sent_sms()
    failed, failed_sid = await harness.sent_sms()

    for status in ("sent", "delivered", "delivered", "sent"):
        assert (await harness.post_status(status_params(delivered_sid, status))).status_code == 204
    report = status_params(failed_sid, "undelivered", ErrorCode="30003")
    assert (await harness.post_status(report)).status_code == 204

    sessions = harness.ledger.sessions
    async with sessions() as session:
        rows = (
            await session.execute(
                select(EngagementEvent.message_id, EngagementEvent.kind, EngagementEvent.detail)
                .where(
                    EngagementEvent.message_id.in_(
                        [
                            (await harness.entry(delivered)).message_id,
                            (await harness.entry(failed)).message_id,
                        ]
                    )
                )
                .order_by(EngagementEvent.id)
            )
        ).all()
    assert [(kind, detail) for _, kind, detail in rows] == [
        ("delivered", None),
        ("undelivered", "twilio 30003"),
    ]
