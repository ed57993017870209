"""Unsubscribe links against the served HTTP app and a real database (SQLite and
PostgreSQL): GET only asks, POST (one-click or the page's button) opts out once,
and forged, altered, other-purpose or expired tokens change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.customers.consent import ConsentLedger
from engine.messaging.ledger import MessageLedger
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.tables import ConsentRecord, UsedLinkToken
from engine.platform.http_server import serve_http
from engine.platform.links.tokens import LinkPurpose, LinkSigner
from engine.processes.http import build_http_app
from tests.engine.customers.pages.support import SAME_ORIGIN, served_app
from tests.support.marks import TEST_MARKS

SECRET = "unsubscribe-test-secret"
CUSTOMER = "cus-unsub"
JOURNEY = "journey-unsub"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
PAGE_BUTTON = {"confirm": "unsubscribe"}


@dataclass
class Harness:
    http: httpx.AsyncClient
    consent: ConsentLedger
    sessions: async_sessionmaker[AsyncSession]
    signer: LinkSigner

    def token(self, purpose: str = LinkPurpose.UNSUBSCRIBE, customer: str = CUSTOMER) -> str:
        return self.signer.sign(purpose, customer, JOURNEY)

    async def rows(self) -> tuple[int, int]:
        """How many consent events and used tokens are stored."""
        async with self.sessions() as session:
            events = await session.scalar(select(func.count()).select_from(ConsentRecord))
            tokens = await session.scalar(select(func.count()).select_from(UsedLinkToken))
        assert isinstance(events, int)
        assert isinstance(tokens, int)
        return events, tokens


@pytest.fixture
async def harness(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Harness]:
    sessions = db_sessions
    consent = ConsentLedger(sessions, TEST_MARKS)
    signer = LinkSigner(SECRET)
    app = build_http_app(
        ledger=MessageLedger(sessions),
        suppressions=SuppressionList(sessions),
        consent=consent,
        signer=signer,
        twilio_auth_token=None,
        public_base_url="https://care.shop.example",
    )
    async with (
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http,
    ):
        yield Harness(http, consent, sessions, signer)


def assert_safe_page(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert CUSTOMER not in response.text
    assert JOURNEY not in response.text


async def test_get_shows_a_confirmation_page_and_changes_nothing(harness: Harness) -> None:
    token = harness.token()
    for _ in range(3):  # a mail scanner, a link preview, the customer
        response = await harness.http.get(f"/u/{token}")
        assert response.status_code == 200
        assert_safe_page(response)
        assert '<form method="post">' in response.text
        assert 'name="confirm" value="unsubscribe"' in response.text
        assert token not in response.text
    assert await harness.rows() == (0, 0)
    assert await harness.consent.allows(CUSTOMER, "email", "marketing")
    # HEAD is a GET without a body: nothing either.
    assert (await harness.http.head(f"/u/{token}")).status_code == 200
    assert await harness.rows() == (0, 0)


async def test_one_click_post_records_the_opt_out(harness: Harness) -> None:
    response = await harness.http.post(f"/u/{harness.token()}", data=ONE_CLICK)

    assert response.status_code == 200
    assert_safe_page(response)
    assert "no longer receive marketing" in response.text
    [event] = await harness.consent.history(CUSTOMER)
    assert (event.granted, event.channel, event.category, event.source) == (
        False,
        None,
        "marketing",
        "one_click",
    )
    for channel in ("email", "sms", "whatsapp"):
        assert not await harness.consent.allows(CUSTOMER, channel, "marketing")
        assert await harness.consent.allows(CUSTOMER, channel, "transactional")
    assert await harness.rows() == (1, 1)


async def test_one_click_as_multipart_form_data_works_too(harness: Harness) -> None:
    # RFC 8058 allows either form encoding.
    response = await harness.http.post(
        f"/u/{harness.token()}", files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert response.status_code == 200
    assert not await harness.consent.allows(CUSTOMER, "email", "marketing")


async def test_the_page_button_records_the_opt_out(harness: Harness) -> None:
    response = await harness.http.post(f"/u/{harness.token()}", data=PAGE_BUTTON)

    assert response.status_code == 200
    [event] = await harness.consent.history(CUSTOMER)
    assert (event.granted, event.category, event.source) == (False, "marketing", "unsubscribe_page")


async def test_a_repeated_post_is_harmless_and_records_nothing_again(harness: Harness) -> None:
    token = harness.token()
    first = await harness.http.post(f"/u/{token}", data=ONE_CLICK)
    # The customer opts in again later (preferences page, shop API)...
    await harness.consent.record(
        CUSTOMER, granted=True, channel=None, category="marketing", source="api"
    )

    # ...and the old one-click POST is replayed (mail client retry, second click).
    again = await harness.http.post(f"/u/{token}", data=ONE_CLICK)
    button = await harness.http.post(f"/u/{token}", data=PAGE_BUTTON)

    assert first.status_code == 200
    for response in (again, button):
        assert response.status_code == 200
        assert_safe_page(response)
        assert "already unsubscribed" in response.text
    assert [e.source for e in await harness.consent.history(CUSTOMER)] == ["one_click", "api"]
    assert await harness.consent.allows(CUSTOMER, "email", "marketing")
    assert await harness.rows() == (2, 1)


async def test_a_post_that_is_not_an_unsubscribe_request_changes_nothing(
    harness: Harness,
) -> None:
    token = harness.token()
    for data in ({}, {"List-Unsubscribe": "Two-Clicks"}, {"confirm": "yes"}):
        response = await harness.http.post(f"/u/{token}", data=data)
        assert response.status_code == 400
    assert await harness.rows() == (0, 0)
    # The token is still good for the real thing.
    assert (await harness.http.post(f"/u/{token}", data=ONE_CLICK)).status_code == 200


def altered(token: str) -> str:
    # Change one character inside the signature (the last part). Not its last
    # character: that one carries base64 padding bits, and some changes there
    # decode to the very same bytes.
    index = len(token) - 5
    swapped = "A" if token[index] != "A" else "B"
    return token[:index] + swapped + token[index + 1 :]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_forged_altered_and_other_purpose_tokens_are_400_and_change_nothing(
    harness: Harness, method: str
) -> None:
    good = harness.token()
    rest = good.partition(".")[2]
    forged = LinkSigner("not-our-secret").sign(LinkPurpose.UNSUBSCRIBE, CUSTOMER, JOURNEY)
    other_customer = harness.token(customer="cus-victim")
    swapped = other_customer.partition(".")[0] + "." + rest  # someone else's payload
    for token in (
        forged,
        altered(good),
        swapped,
        good[:-5],
        "not-a-token",
        "x" * 5000,
        harness.token(LinkPurpose.FEEDBACK),
        harness.token(LinkPurpose.PREFERENCES),
    ):
        response = await harness.http.request(method, f"/u/{token}", data=ONE_CLICK)
        assert response.status_code == 400, token
        assert_safe_page(response)
        assert "not valid" in response.text
        assert "<form" not in response.text
    assert await harness.rows() == (0, 0)
    assert await harness.consent.allows(CUSTOMER, "email", "marketing")
    assert await harness.consent.allows("cus-victim", "email", "marketing")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_expired_token_is_410_and_changes_nothing(harness: Harness, method: str) -> None:
    issued = datetime.now(UTC) - timedelta(days=61)
    old = LinkSigner(SECRET, clock=lambda: issued).sign(LinkPurpose.UNSUBSCRIBE, CUSTOMER, JOURNEY)
    recent_enough = LinkSigner(SECRET, clock=lambda: issued + timedelta(days=2)).sign(
        LinkPurpose.UNSUBSCRIBE, CUSTOMER, JOURNEY
    )

    response = await harness.http.request(method, f"/u/{old}", data=ONE_CLICK)

    assert response.status_code == 410
    assert_safe_page(response)
    assert "expired" in response.text
    assert await harness.rows() == (0, 0)
    # 59 days old is still accepted.
    assert (await harness.http.get(f"/u/{recent_enough}")).status_code == 200


async def test_only_get_and_post_reach_the_link(harness: Harness) -> None:
    token = harness.token()
    assert (await harness.http.put(f"/u/{token}", data=ONE_CLICK)).status_code == 405
    assert (await harness.http.delete(f"/u/{token}")).status_code == 405
    assert await harness.rows() == (0, 0)


async def test_an_old_link_after_a_later_opt_in_shows_the_real_state(
    db_engine: AsyncEngine,
) -> None:
    async with served_app(db_engine) as served:
        old_link = f"/u/{served.signer.sign(LinkPurpose.UNSUBSCRIBE, CUSTOMER, JOURNEY)}"
        assert (await served.http.post(old_link, data=ONE_CLICK)).status_code == 200
        # Still unsubscribed: a second click says so.
        again = await served.http.post(old_link, data=PAGE_BUTTON)
        assert "You are already unsubscribed" in again.text

        # Later the customer takes marketing by email back, on the preference centre.
        preferences = served.signer.sign(LinkPurpose.PREFERENCES, CUSTOMER, JOURNEY)
        wanted = {
            f"{channel}.{category}": "on"
            for channel in ("email", "sms", "whatsapp")
            for category in ("relationship", "feedback", "marketing")
            if (channel, category) not in {("sms", "marketing"), ("whatsapp", "marketing")}
        }
        saved = await served.http.post(
            f"/p/{preferences}", data={"token": preferences, **wanted}, headers=SAME_ORIGIN
        )
        assert saved.status_code == 200
        rows = await served.count(ConsentRecord)

        # The old link, clicked (or replayed) now, tells the truth and changes nothing.
        response = await served.http.post(old_link, data=PAGE_BUTTON)

        assert response.status_code == 200
        assert_safe_page(response)
        assert "You are already unsubscribed" not in response.text
        assert "again by email" in response.text
        assert "Nothing was changed" in response.text
        assert await served.count(ConsentRecord) == rows
        assert await served.consent.allows(CUSTOMER, "email", "marketing")
        assert not await served.consent.allows(CUSTOMER, "sms", "marketing")
