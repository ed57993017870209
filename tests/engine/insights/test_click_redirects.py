"""Tracked links through the served HTTP app, with a real ledger (SQLite and
PostgreSQL): a genuine link records the click against its message and redirects; a
forged or altered one, or one to a host not allowed, gets an error page and no
redirect; scanners' clicks are kept but marked automated."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.channels.email import with_pixel
from activities.rendering.click_tracking import ClickTracker
from engine.customers.consent import ConsentLedger
from engine.insights.click_redirects import PIXEL, ClickRedirects, OpenPixels
from engine.messaging.ledger import Claim, MessageLedger
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_session_factory
from engine.platform.database.tables import EngagementEvent, Message
from engine.platform.http_server import serve_http
from engine.platform.links.clicks import ClickSigner
from engine.platform.links.tokens import LinkSigner
from engine.processes.http import build_http_app
from tests.support.marks import TEST_MARKS

SECRET = "click-test-secret"
PUBLIC_BASE_URL = "https://links.shop.example"
ALLOWED = ("shop.example", "*.carrier.example")
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
# Clicks this long after the send are a person's (past the scanner window).
LATER = timedelta(minutes=5)


@dataclass
class Harness:
    http: httpx.AsyncClient
    ledger: MessageLedger
    engine: AsyncEngine
    tracker: ClickTracker
    now: list[datetime]  # the app's clock, movable

    async def sent_message(self, *, variant: str | None = "b", channel: str = "email") -> Claim:
        claim = Claim(
            journey_id=f"order-{uuid.uuid4().hex[:10]}",
            step="review_request",
            iteration=0,
            channel=channel,
            template="review_request",
            recipient="jane@example.test",
            plan="default@v1",
            category="marketing",
            customer_id="cust-1",
            experiment="review-subject" if variant else None,
            variant=variant,
        )
        await self.ledger.claim(claim)
        sent_at = datetime.now(UTC)
        await self.ledger.mark_sent(claim.key, provider_message_id="<m@x>", sent_at=sent_at)
        self.now[0] = sent_at + LATER
        return claim

    def link(self, claim: Claim, name: str, target: str) -> str:
        """The link as the message carries it (the channel's own rewriting)."""
        return self.tracker.for_message(claim.key)(name, target)

    async def click(self, url: str, *, method: str = "GET", agent: str = BROWSER) -> httpx.Response:
        path = urlsplit(url).path
        return await self.http.request(method, path, headers={"User-Agent": agent})

    async def clicks(self) -> list[tuple[str, bool, str | None, str, str, str | None]]:
        """(step, automated, detail, channel, kind, variant) of every engagement row."""
        sessions = create_session_factory(self.engine)
        async with sessions() as session:
            rows = await session.execute(
                select(
                    Message.step,
                    EngagementEvent.automated,
                    EngagementEvent.detail,
                    Message.channel,
                    EngagementEvent.kind,
                    Message.variant,
                )
                .join(Message, Message.id == EngagementEvent.message_id)
                .order_by(EngagementEvent.id)
            )
            return [tuple(row) for row in rows]


@pytest.fixture
async def harness(db_engine: AsyncEngine) -> AsyncIterator[Harness]:
    sessions = create_session_factory(db_engine)
    ledger = MessageLedger(sessions)
    signer = ClickSigner(SECRET)
    now = [datetime.now(UTC)]
    app = build_http_app(
        ledger=ledger,
        suppressions=SuppressionList(sessions),
        consent=ConsentLedger(sessions, TEST_MARKS),
        signer=LinkSigner("test-link-secret"),
        twilio_auth_token=None,
        public_base_url=PUBLIC_BASE_URL,
        clicks=ClickRedirects(ledger, signer, ALLOWED, clock=lambda: now[0]),
        opens=OpenPixels(ledger, signer),
    )
    async with (
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http,
    ):
        tracker = ClickTracker(signer, PUBLIC_BASE_URL, ALLOWED, opens=True)
        yield Harness(http, ledger, db_engine, tracker, now)


async def test_a_click_is_recorded_against_its_message_then_redirected(harness: Harness) -> None:
    claim = await harness.sent_message(variant="b")
    target = "https://shop.example/orders/A1/review"
    link = harness.link(claim, "review", target)
    assert link.startswith(PUBLIC_BASE_URL + "/c/")

    answer = await harness.click(link)

    assert answer.status_code == 302
    assert answer.headers["location"] == target
    assert await harness.clicks() == [("review_request", False, "review", "email", "clicked", "b")]


async def test_an_altered_link_gets_an_error_page_not_a_redirect(harness: Harness) -> None:
    claim = await harness.sent_message()
    link = harness.link(claim, "review", "https://shop.example/orders/A1/review")
    path = urlsplit(link).path
    token = path.rsplit("/", 1)[1]
    # One character of the signed payload changed, and a token signed with another key.
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    foreign = ClickSigner("someone-elses-key").sign(claim.key, "review", "https://evil.example/")
    for bad in (flipped, foreign, "not-a-token", token + "x"):
        answer = await harness.http.get(f"/c/{bad}")
        assert answer.status_code == 400, bad
        assert "location" not in answer.headers
        assert "not valid" in answer.text
    assert await harness.clicks() == []


async def test_a_signed_link_to_a_host_not_allowed_is_refused(harness: Harness) -> None:
    claim = await harness.sent_message()
    # Signed by us (as if the allowed hosts were narrowed since the message went out).
    token = ClickSigner(SECRET).sign(claim.key, "review", "https://evil.example/phish")
    answer = await harness.http.get(f"/c/{token}")
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert await harness.clicks() == []


def test_links_to_other_hosts_and_our_own_pages_are_left_alone() -> None:
    tracker = ClickTracker(ClickSigner(SECRET), PUBLIC_BASE_URL, ALLOWED)
    track = tracker.for_message("order-A1/review_request/0/email")
    assert track("track_order", "https://tracking.other.example/1Z") == (
        "https://tracking.other.example/1Z"
    )
    assert track("unsubscribe", "https://shop.example/u/x") == "https://shop.example/u/x"
    assert track("track_order", "https://eu.carrier.example/1Z").startswith(PUBLIC_BASE_URL)
    # A host merely ending like an allowed one is not allowed.
    assert track("help", "https://evilshop.example/help") == "https://evilshop.example/help"


async def test_a_link_of_an_unknown_message_is_not_found(harness: Harness) -> None:
    token = ClickSigner(SECRET).sign(
        "order-nope/review_request/0/email", "review", "https://shop.example/"
    )
    answer = await harness.http.get(f"/c/{token}")
    assert answer.status_code == 404
    assert "location" not in answer.headers


async def test_scanners_are_kept_but_marked_automated(harness: Harness) -> None:
    claim = await harness.sent_message(variant=None)
    link = harness.link(claim, "review", "https://shop.example/orders/A1/review")

    head = await harness.click(link, method="HEAD")
    scanner = await harness.click(link, agent="Mozilla/5.0 (compatible; Mimecast URL Protect)")
    empty_agent = await harness.click(link, agent="")
    # A browser, but a second after the message went out: faster than any reader.
    entry = await harness.ledger.get(claim.key)
    assert entry is not None
    assert entry.sent_at is not None
    harness.now[0] = entry.sent_at + timedelta(seconds=1)
    prefetch = await harness.click(link)
    harness.now[0] = entry.sent_at + LATER
    person = await harness.click(link)

    assert [r.status_code for r in (head, scanner, empty_agent, prefetch, person)] == [302] * 5
    assert [automated for _, automated, *_ in await harness.clicks()] == [
        True,
        True,
        True,
        True,
        False,
    ]


async def test_an_open_pixel_records_an_open_and_never_tells_a_bad_token(
    harness: Harness,
) -> None:
    claim = await harness.sent_message()
    pixel = harness.tracker.pixel(claim.key)
    assert pixel is not None
    assert pixel.startswith(PUBLIC_BASE_URL + "/o/")
    html = with_pixel("<html><body><p>Thanks</p></body></html>", pixel)
    assert html.endswith(
        f'<img src="{pixel}" width="1" height="1" alt="" '
        'style="display:block;border:0"></body></html>'
    )

    genuine = await harness.click(pixel)
    forged = await harness.http.get("/o/forged-token")

    for answer in (genuine, forged):
        assert answer.status_code == 200
        assert answer.content == PIXEL
        assert answer.headers["content-type"] == "image/gif"
    assert [(kind, automated) for _, automated, _, _, kind, _ in await harness.clicks()] == [
        ("opened", False)
    ]


def test_without_open_tracking_there_is_no_pixel() -> None:
    plain = ClickTracker(ClickSigner(SECRET), PUBLIC_BASE_URL, ALLOWED)
    assert plain.pixel("order-A1/thanks/0/email") is None


async def test_an_unsubscribe_is_credited_to_the_journeys_latest_email(harness: Harness) -> None:
    earlier = await harness.sent_message(variant=None)
    claim = Claim(
        journey_id=earlier.journey_id,
        step="cross_sell",
        iteration=0,
        channel="email",
        template="cross_sell",
        recipient="jane@example.test",
        customer_id="cust-1",
    )
    await harness.ledger.claim(claim)
    await harness.ledger.mark_sent(
        claim.key, provider_message_id="<later@x>", sent_at=datetime.now(UTC) + timedelta(hours=1)
    )
    token = LinkSigner("test-link-secret").sign("unsubscribe", "cust-1", earlier.journey_id)

    answer = await harness.http.post(
        f"/u/{token}", data={"List-Unsubscribe": "One-Click"}, headers={"User-Agent": BROWSER}
    )
    again = await harness.http.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})

    assert (answer.status_code, again.status_code) == (200, 200)
    assert [(step, kind) for step, _, _, _, kind, _ in await harness.clicks()] == [
        ("cross_sell", "unsubscribed")
    ]
