"""Bounces (RFC 3464 DSNs) and complaints (ARF, RFC 5965), built to the RFCs,
delivered over real SMTP to the bounce endpoint (aiosmtpd) and POSTed to the HTTP
app's webhook, against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from aiosmtplib.email import flatten_message
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.email.message import build_email
from activities.email.rendering import RenderedEmail
from engine.customers.bounce_mailbox import BounceMailbox
from engine.customers.bounces_and_complaints import MailReports
from engine.customers.consent import CONSENT_CHANNELS, SOURCE_COMPLAINT, ConsentLedger
from engine.customers.mail_report_webhook import MAIL_REPORTS_PATH, MailReportWebhook
from engine.messaging.bounce_address import verp_address
from engine.messaging.ledger import Claim, MessageLedger, message_id_for
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.migrate import upgrade_database
from engine.platform.database.tables import ConsentRecord, EngagementEvent, SuppressedAddress
from engine.platform.http_server import serve_http
from engine.platform.links.tokens import LinkSigner
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.http import build_http_app, http_app
from tests.support.databases import sqlite_url
from tests.support.mail_reports import complaint_report, delivery_status_notification
from tests.support.marks import TEST_MARKS
from tests.support.net import free_port

DOMAIN = "shop.test"
BOUNCES = f"bounces@{DOMAIN}"
FEEDBACK_LOOP = f"fbl@{DOMAIN}"
RECIPIENT = "jane@example.test"
CUSTOMER = "cus-reports"
JOURNEY = "order-R-1"
TOKEN = "mail-report-webhook-token-0123456789abcdef"


@dataclass
class Harness:
    sessions: async_sessionmaker[AsyncSession]
    ledger: MessageLedger
    consent: ConsentLedger
    http: httpx.AsyncClient
    smtp_port: int
    told: list[str]
    message_id: str
    original: bytes

    async def over_smtp(self, report: bytes, recipient: str) -> str:
        """Deliver ``report`` to the endpoint with MAIL FROM:<> as mail systems do."""
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=self.smtp_port) as smtp:
            _, reply = await smtp.sendmail("", [recipient], report)
        return reply

    async def posted(self, report: bytes, token: str | None = TOKEN) -> httpx.Response:
        headers = {"content-type": "message/rfc822"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return await self.http.post(MAIL_REPORTS_PATH, content=report, headers=headers)

    async def counts(self) -> tuple[int, int, int]:
        """Suppressions, engagement events, consent events."""
        async with self.sessions() as session:
            found = [
                await session.scalar(select(func.count()).select_from(table))
                for table in (SuppressedAddress, EngagementEvent, ConsentRecord)
            ]
        assert all(isinstance(count, int) for count in found)
        return found[0] or 0, found[1] or 0, found[2] or 0

    async def engagement(self) -> list[tuple[str, str | None]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(EngagementEvent.kind, EngagementEvent.detail).order_by(EngagementEvent.id)
            )
            return [(row.kind, row.detail) for row in rows]


def original_email(message_id: str, *, with_return_path: bool = True) -> bytes:
    """The email as it reached the recipient's server (Return-Path added there)."""
    email = build_email(
        RenderedEmail(
            subject="Your order is on its way", preheader="", text="Hi\n", html="<p>Hi</p>"
        ),
        sender=f"Shop <care@{DOMAIN}>",
        recipient_email=RECIPIENT,
        recipient_name="Jane",
        message_id=message_id,
        journey_id=JOURNEY,
        step="cross_sell",
    )
    content = flatten_message(email)
    if with_return_path:
        content = f"Return-Path: <{verp_address(BOUNCES, message_id)}>\r\n".encode() + content
    return content


@pytest.fixture
async def harness(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Harness]:
    sessions = db_sessions
    ledger = MessageLedger(sessions)
    consent = ConsentLedger(sessions, TEST_MARKS)
    suppressions = SuppressionList(sessions)
    claim = Claim(
        journey_id=JOURNEY,
        step="cross_sell",
        iteration=0,
        channel="email",
        template="cross_sell",
        recipient=RECIPIENT,
        category="marketing",
        customer_id=CUSTOMER,
    )
    await ledger.claim(claim)
    message_id = message_id_for(claim.key, DOMAIN)
    await ledger.mark_sent(claim.key, message_id, datetime.now(UTC))
    told: list[str] = []

    async def on_consent_changed(customer_id: str) -> None:
        told.append(customer_id)

    reports = MailReports(
        sessions,
        suppressions,
        consent,
        bounce_address=BOUNCES,
        on_consent_changed=on_consent_changed,
    )
    app = build_http_app(
        ledger=ledger,
        suppressions=suppressions,
        consent=consent,
        signer=LinkSigner("bounce-test-secret"),
        twilio_auth_token=None,
        public_base_url="https://care.shop.test",
        mail_reports=MailReportWebhook(reports, TOKEN),
    )
    async with (
        BounceMailbox(reports, "127.0.0.1", 0) as mailbox,
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http,
    ):
        yield Harness(
            sessions,
            ledger,
            consent,
            http,
            mailbox.port,
            told,
            message_id,
            original_email(message_id),
        )


async def test_a_hard_bounce_over_smtp_suppresses_the_address_once(harness: Harness) -> None:
    verp = verp_address(BOUNCES, harness.message_id)
    dsn = delivery_status_notification(
        harness.original, to=verp, final_recipient=RECIPIENT, status="5.1.1"
    )
    assert (await harness.over_smtp(dsn, verp)).startswith("2.0.0")

    suppressions = await SuppressionList(harness.sessions).entries()
    assert [(s.channel, s.address) for s in suppressions] == [("email", RECIPIENT)]
    assert "hard bounce 5.1.1" in suppressions[0].reason
    entry = await harness.ledger.get(f"{JOURNEY}/cross_sell/0/email")
    assert entry is not None
    assert entry.delivery_status == "undelivered"
    assert entry.error is not None
    assert "delivery error 511" in entry.error
    assert await harness.engagement() == [("bounced", "hard 5.1.1")]

    before = await harness.counts()
    # The same report again, by SMTP and by the webhook: nothing more is written.
    assert (await harness.over_smtp(dsn, verp)).startswith("2.0.0")
    assert (await harness.posted(dsn)).status_code == 204
    assert await harness.counts() == before


async def test_a_soft_bounce_is_recorded_and_suppresses_nothing(harness: Harness) -> None:
    # Headers only, posted by a provider: found by the VERP Return-Path in them.
    dsn = delivery_status_notification(
        harness.original,
        to=BOUNCES,
        final_recipient=RECIPIENT,
        status="4.2.2",
        action="delayed",
        diagnostic="smtp; 452 4.2.2 Mailbox full",
        headers_only=True,
    )
    answer = await harness.posted(dsn)
    assert answer.status_code == 204
    assert answer.headers["x-mail-report-outcome"] == "soft_bounce"
    assert await SuppressionList(harness.sessions).entries() == []
    assert await harness.engagement() == [("bounced", "soft 4.2.2")]
    entry = await harness.ledger.get(f"{JOURNEY}/cross_sell/0/email")
    assert entry is not None
    assert entry.delivery_status is None


async def test_a_complaint_unsubscribes_marketing_on_every_channel(harness: Harness) -> None:
    arf = complaint_report(
        harness.original,
        to=FEEDBACK_LOOP,
        original_mail_from=verp_address(BOUNCES, harness.message_id),
        original_rcpt_to=RECIPIENT,
    )
    answer = await harness.posted(arf)
    assert answer.status_code == 204
    assert answer.headers["x-mail-report-outcome"] == "complaint"

    for channel in CONSENT_CHANNELS:
        assert not await harness.consent.allows(CUSTOMER, channel, "marketing")
        assert await harness.consent.allows(CUSTOMER, channel, "relationship")
        assert await harness.consent.allows(CUSTOMER, channel, "transactional")
    [event] = await harness.consent.history(CUSTOMER)
    assert (event.channel, event.category, event.granted) == (None, "marketing", False)
    assert event.source == SOURCE_COMPLAINT
    assert event.api_key_id is None
    assert await harness.engagement() == [("complained", "abuse")]
    assert harness.told == [CUSTOMER]

    # Replayed, over SMTP this time: no second consent event, journeys not told again.
    before = await harness.counts()
    assert (await harness.over_smtp(arf, FEEDBACK_LOOP)).startswith("2.0.0")
    assert await harness.counts() == before
    assert harness.told == [CUSTOMER]


async def test_a_complaint_is_tied_to_the_message_by_its_message_id(harness: Harness) -> None:
    # No VERP anywhere: the provider reports to its own address and the original
    # went out with the plain From as its envelope sender.
    arf = complaint_report(
        original_email(harness.message_id, with_return_path=False),
        to=FEEDBACK_LOOP,
        original_mail_from=f"care@{DOMAIN}",
        original_rcpt_to=RECIPIENT,
        headers_only=False,
    )
    assert (await harness.over_smtp(arf, FEEDBACK_LOOP)).startswith("2.0.0")
    assert not await harness.consent.allows(CUSTOMER, "sms", "marketing")


async def test_reports_about_no_message_of_ours_are_ignored_without_error(
    harness: Harness,
) -> None:
    stranger_id = message_id_for("order-X/other/0/email", DOMAIN)
    stranger = original_email(stranger_id)
    dsn = delivery_status_notification(
        stranger, to=verp_address(BOUNCES, stranger_id), final_recipient=RECIPIENT, status="5.1.1"
    )
    arf = complaint_report(
        stranger,
        to=FEEDBACK_LOOP,
        original_mail_from=verp_address(BOUNCES, stranger_id),
        original_rcpt_to=RECIPIENT,
    )
    assert (await harness.over_smtp(dsn, verp_address(BOUNCES, stranger_id))).startswith("2.0.0")
    assert (await harness.over_smtp(arf, FEEDBACK_LOOP)).startswith("2.0.0")
    answer = await harness.posted(dsn)
    assert answer.status_code == 204
    assert answer.headers["x-mail-report-outcome"] == "unknown_message"
    # Our token under another domain's bounce address is not ours either.
    foreign = delivery_status_notification(
        stranger,
        to=f"bounces+{harness.message_id[1:33]}@elsewhere.test",
        final_recipient=RECIPIENT,
        status="5.1.1",
        headers_only=True,
    )
    assert (await harness.posted(foreign)).headers["x-mail-report-outcome"] == "unknown_message"
    assert await harness.counts() == (0, 0, 0)
    assert harness.told == []


async def test_the_webhook_wants_its_token_and_a_report(harness: Harness) -> None:
    dsn = delivery_status_notification(
        harness.original, to=BOUNCES, final_recipient=RECIPIENT, status="5.1.1"
    )
    assert (await harness.posted(dsn, token=None)).status_code == 401
    assert (await harness.posted(dsn, token=TOKEN + "x")).status_code == 401
    basic = await harness.http.post(
        MAIL_REPORTS_PATH, content=dsn, headers={"authorization": f"Basic {TOKEN}"}
    )
    assert basic.status_code == 401
    assert await harness.counts() == (0, 0, 0)
    not_a_report = b"From: someone@example.test\r\nSubject: Out of office\r\n\r\nBack Monday.\r\n"
    answer = await harness.posted(not_a_report)
    assert answer.status_code == 400
    # A plain auto-reply by SMTP is taken (250) and changes nothing.
    assert (await harness.over_smtp(not_a_report, BOUNCES)).startswith("2.0.0")
    assert await harness.counts() == (0, 0, 0)


async def test_the_http_process_serves_both_ways_in_from_its_settings(tmp_path: Path) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            database_url=database,
            bounce_address=BOUNCES,
            bounce_smtp_port=free_port(),
            mail_feedback_token=TOKEN,
        )
    )
    not_a_report = b"From: someone@example.test\r\nSubject: Out of office\r\n\r\nBack Monday.\r\n"
    async with (
        http_app(settings) as app,
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http,
        aiosmtplib.SMTP(hostname="127.0.0.1", port=settings.bounce_smtp_port) as smtp,
    ):
        _, reply = await smtp.sendmail("", [BOUNCES], not_a_report)
        assert reply.startswith("2.0.0")
        answer = await http.post(
            MAIL_REPORTS_PATH,
            content=not_a_report,
            headers={"authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 400
    # Without a token the webhook is not served at all.
    quiet = settings.model_copy(update={"mail_feedback_token": None, "bounce_smtp_port": 0})
    async with (
        http_app(quiet) as app,
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http,
    ):
        assert (await http.post(MAIL_REPORTS_PATH, content=not_a_report)).status_code == 404
