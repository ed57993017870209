"""The abuse limits of the customer link pages, over real HTTP on a real database
(SQLite and PostgreSQL): a body over the cap is refused (413) before it is parsed,
whether announced or streamed, and each client gets so many requests a minute on
the link pages (429 with Retry-After after that), counted by its own address or,
behind a trusted proxy only, by the address the proxy forwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.customers.feedback_responses import FeedbackResponses
from engine.customers.pages.feedback import FEEDBACK_MAX_BODY_BYTES, MAX_COMMENT_LENGTH
from engine.customers.pages.preference_centre import PREFERENCES_MAX_BODY_BYTES
from engine.customers.pages.unsubscribe import UNSUBSCRIBE_MAX_BODY_BYTES
from engine.journeys.directory import JourneyDirectory
from engine.platform.database.connection import create_session_factory
from engine.platform.database.tables import ConsentRecord, FeedbackResponse, UsedLinkToken
from engine.platform.links.tokens import LinkPurpose
from engine.processes.http import ConnectingJourneys
from tests.engine.customers.pages.support import SAME_ORIGIN, Served, served_app
from tests.support.marks import TEST_MARKS
from tests.support.raw_http import chunked, raw_request

CUSTOMER = "cus-limits"
JOURNEY = "order-LIMITS-1"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PAGES = [
    ("u", LinkPurpose.UNSUBSCRIBE, UNSUBSCRIBE_MAX_BODY_BYTES),
    ("p", LinkPurpose.PREFERENCES, PREFERENCES_MAX_BODY_BYTES),
    ("f", LinkPurpose.FEEDBACK, FEEDBACK_MAX_BODY_BYTES),
]
CELLS = [
    f"{channel}.{category}"
    for channel in ("email", "sms", "whatsapp")
    for category in ("relationship", "feedback", "marketing")
]


async def _no_temporal() -> JourneyDirectory:
    # The feedback page is served, but no answer can reach a journey here: these
    # tests are about what happens before that.
    raise ConnectionError("no Temporal in these tests")


@asynccontextmanager
async def link_pages(db_engine: AsyncEngine, **arguments: Any) -> AsyncIterator[Served]:
    """The app with all three link pages (build_http_app ``arguments`` added)."""
    async with served_app(
        db_engine,
        journeys=ConnectingJourneys(_no_temporal),
        feedback_responses=FeedbackResponses(create_session_factory(db_engine), TEST_MARKS),
        **arguments,
    ) as served:
        yield served


@pytest.fixture
async def served(db_engine: AsyncEngine) -> AsyncIterator[Served]:
    async with link_pages(db_engine) as app:
        yield app


def link(served: Served, prefix: str, purpose: LinkPurpose) -> str:
    return f"/{prefix}/{served.signer.sign(purpose, CUSTOMER, JOURNEY)}"


async def nothing_stored(served: Served) -> bool:
    return (
        await served.count(ConsentRecord),
        await served.count(UsedLinkToken),
        await served.count(FeedbackResponse),
    ) == (0, 0, 0)


# --- body caps --------------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "purpose", "cap"), PAGES, ids=[p[0] for p in PAGES])
async def test_an_announced_oversized_post_is_refused_before_it_is_read(
    served: Served, prefix: str, purpose: LinkPurpose, cap: int
) -> None:
    # The body is announced but never sent: only a server that refuses it
    # without waiting for it can answer.
    answer = await raw_request(
        str(served.http.base_url),
        "POST",
        link(served, prefix, purpose),
        {**FORM, **SAME_ORIGIN, "Content-Length": str(cap + 1)},
    )
    assert answer.status == 413
    assert await nothing_stored(served)


@pytest.mark.parametrize(("prefix", "purpose", "cap"), PAGES, ids=[p[0] for p in PAGES])
async def test_a_streamed_post_growing_past_the_cap_is_refused_unparsed(
    served: Served, prefix: str, purpose: LinkPurpose, cap: int
) -> None:
    path = link(served, prefix, purpose)
    token = path.rsplit("/", 1)[1]
    # Every page would act on the fields up front (the one-click opt-out would be
    # recorded); the padding only makes the body too big.
    fields = {
        "token": token,
        "List-Unsubscribe": "One-Click",
        "score": "3",
        "comment": "x" * (cap + 1),
    }
    body = urlencode(fields).encode()
    answer = await raw_request(
        str(served.http.base_url),
        "POST",
        path,
        {**FORM, **SAME_ORIGIN, "Transfer-Encoding": "chunked"},
        chunked(body[:200], body[200:], last=False),
    )
    assert answer.status == 413
    assert await nothing_stored(served)
    # The link still works for a request of a normal size.
    if prefix == "u":
        one_click = await served.http.post(path, data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200
        assert not await served.consent.allows(CUSTOMER, "email", "marketing")


async def test_the_largest_genuine_forms_fit_under_the_caps(served: Served) -> None:
    # The longest comment allowed, in characters of four UTF-8 bytes each, each
    # byte percent-encoded: the worst a browser can send.
    feedback = link(served, "f", LinkPurpose.FEEDBACK)
    comment = "\U0001f600" * MAX_COMMENT_LENGTH
    fields = {"token": feedback.rsplit("/", 1)[1], "score": "9", "comment": comment}
    assert len(urlencode(fields)) < FEEDBACK_MAX_BODY_BYTES
    answered = await served.http.post(feedback, data=fields, headers=SAME_ORIGIN)
    # Read and handled: the journey cannot be reached here, so "try again".
    assert answered.status_code == 503, answered.text

    preferences = link(served, "p", LinkPurpose.PREFERENCES)
    token = preferences.rsplit("/", 1)[1]
    every_box = {"token": token, **dict.fromkeys(CELLS, "on")}
    as_multipart = await served.http.post(
        preferences,
        files={name: (None, value) for name, value in every_box.items()},
        headers=SAME_ORIGIN,
    )
    assert as_multipart.status_code == 200, as_multipart.text
    assert len(urlencode(every_box)) * 4 < PREFERENCES_MAX_BODY_BYTES

    unsubscribe = link(served, "u", LinkPurpose.UNSUBSCRIBE)
    button = await served.http.post(
        unsubscribe, files={"confirm": (None, "unsubscribe")}, headers=SAME_ORIGIN
    )
    assert button.status_code == 200


# --- rate limits ------------------------------------------------------------------------


def retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    return int(response.headers["retry-after"])


async def test_the_link_pages_share_one_limit_per_client(db_engine: AsyncEngine) -> None:
    async with link_pages(db_engine, link_rate_limit="4/minute") as served:
        unsubscribe = link(served, "u", LinkPurpose.UNSUBSCRIBE)
        allowed = [
            await served.http.get(unsubscribe),
            await served.http.get(link(served, "p", LinkPurpose.PREFERENCES)),
            await served.http.get(link(served, "f", LinkPurpose.FEEDBACK) + "?score=9"),
            await served.http.get(link(served, "p", LinkPurpose.PREFERENCES)),
        ]
        assert [response.status_code for response in allowed] == [200, 200, 200, 200]

        # The fifth request within the minute, on any link page, waits.
        assert 1 <= retry_after(await served.http.get(unsubscribe)) <= 60
        refused = await served.http.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert 1 <= retry_after(refused) <= 60
        assert await nothing_stored(served)
        assert await served.consent.allows(CUSTOMER, "email", "marketing")
        # Invalid links count too: guessing tokens is what the limit slows down.
        assert retry_after(await served.http.get("/u/not-a-token")) >= 1
        # No proxy is trusted: a forwarded address is ignored, not a way out.
        spoofed = await served.http.get(unsubscribe, headers={"X-Forwarded-For": "203.0.113.5"})
        assert retry_after(spoofed) >= 1
        # The health check and Twilio's callbacks are not link pages.
        assert (await served.http.get("/healthz")).status_code == 200
        assert (await served.http.post("/twilio/status", data={})).status_code == 403


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    db_engine: AsyncEngine,
) -> None:
    async with link_pages(
        db_engine, link_rate_limit="2/minute", trusted_proxies=["127.0.0.1"]
    ) as served:
        page = link(served, "p", LinkPurpose.PREFERENCES)

        async def visit(client: str) -> int:
            response = await served.http.get(page, headers={"X-Forwarded-For": client})
            return response.status_code

        assert [await visit("203.0.113.5") for _ in range(3)] == [200, 200, 429]
        assert [await visit("198.51.100.20") for _ in range(2)] == [200, 200]
        assert await visit("203.0.113.5") == 429
        # A request the proxy did not forward is the proxy's own: its own budget.
        assert (await served.http.get(page)).status_code == 200
