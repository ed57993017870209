"""The NPS / CSAT landing page on the served app, a real database (SQLite and
PostgreSQL) and the real Temporal dev server with the journey worker: the answer
reaches the running journey as one feedback event (a detractor starts the support
follow-up), a replayed or double submit changes nothing, an ended journey gets a
thank-you, and bad input or bad links record nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus

from engine.customers.feedback_responses import FeedbackResponses
from engine.customers.pages.feedback import feedback_event_id
from engine.journeys.directory import JourneyDirectory
from engine.platform.database.connection import create_session_factory
from engine.platform.database.tables import ErasedCustomer, FeedbackResponse
from engine.platform.links.tokens import LinkPurpose, LinkSigner
from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.http import ConnectingJourneys
from tests.conftest import Service
from tests.engine.customers.pages.support import (
    SAME_ORIGIN,
    Served,
    assert_page,
    served_app,
    signer_at,
)
from tests.support.marks import TEST_MARKS
from tests.support.net import free_port
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.orders import OrderEvent
from workflows.state import JourneyState
from workflows.vocabulary import EventType

CUSTOMER = "cus-feedback-1"


@pytest.fixture
def directory(service: Service) -> JourneyDirectory:
    return JourneyDirectory(service.temporal, service.settings.task_queue)


@pytest.fixture
async def served(
    db_engine: AsyncEngine,
    db_sessions: async_sessionmaker[AsyncSession],
    directory: JourneyDirectory,
) -> AsyncIterator[Served]:
    responses = FeedbackResponses(db_sessions, TEST_MARKS)
    async with served_app(db_engine, journeys=directory, feedback_responses=responses) as app:
        yield app


async def delivered_journey(directory: JourneyDirectory) -> str:
    """A running journey whose order was delivered; its order id."""
    order = domain_order(customer_id=CUSTOMER)
    await directory.start(order)
    await directory.record_event(
        order.order_id,
        OrderEvent(event_id="delivered-1", type=EventType.DELIVERED, occurred_at=datetime.now(UTC)),
    )
    await eventually(
        lambda: state_of(directory, order.order_id),
        lambda state: EventType.DELIVERED in state.events,
    )
    return order.order_id


async def state_of(directory: JourneyDirectory, order_id: str) -> JourneyState:
    return (await directory.get(order_id)).state


def feedback_token(served: Served, order_id: str) -> str:
    return served.signer.sign(LinkPurpose.FEEDBACK, CUSTOMER, f"order-{order_id}")


async def answer(served: Served, tok: str, score: str, comment: str = "") -> httpx.Response:
    return await served.http.post(
        f"/f/{tok}",
        data={"token": tok, "score": score, "comment": comment},
        headers=SAME_ORIGIN,
    )


def picked(page: str) -> list[str]:
    return re.findall(r'value="(\d+)"\s+required\s+checked', page)


async def test_the_page_shows_the_picked_score_and_records_nothing(
    served: Served, directory: JourneyDirectory
) -> None:
    order_id = await delivered_journey(directory)
    tok = feedback_token(served, order_id)

    for _ in range(2):  # a mail scanner, then the customer
        response = await served.http.get(f"/f/{tok}", params={"score": "3"})
        assert_page(response, 200)
        assert picked(response.text) == ["3"]
        assert 'name="comment"' in response.text
        assert f'name="token" value="{tok}"' in response.text
    without = await served.http.get(f"/f/{tok}")
    assert_page(without, 200)
    assert picked(without.text) == []

    assert await served.count(FeedbackResponse) == 0
    state = await state_of(directory, order_id)
    assert state.feedback is None
    assert not any(e.startswith("feedback-") for e in state.seen_event_ids)


@pytest.mark.parametrize("score", ["11", "-1", "abc", "3.5", "٣", "10000000000000000000000"])
async def test_a_bad_score_in_the_link_names_the_field(served: Served, score: str) -> None:
    tok = feedback_token(served, "NO-SUCH-ORDER")
    response = await served.http.get(f"/f/{tok}", params={"score": score})
    assert_page(response, 400)
    assert "score must be a whole number from 0 to 10" in response.text
    assert await served.count(FeedbackResponse) == 0


async def test_a_low_score_reaches_the_journey_once_and_starts_the_support_branch(
    served: Served, directory: JourneyDirectory
) -> None:
    order_id = await delivered_journey(directory)
    tok = feedback_token(served, order_id)

    response = await answer(served, tok, "3", "The box arrived crushed.\r\nSecond line.")

    assert_page(response, 200)
    assert "Thank you" in response.text
    state = await eventually(
        lambda: state_of(directory, order_id),
        lambda s: s.feedback is not None and "detractor_follow_up" in _planned(s),
    )
    assert state.feedback is not None
    assert (state.feedback.score, state.feedback.comment) == (
        3,
        "The box arrived crushed.\nSecond line.",
    )
    assert state.marketing_blocked
    assert state.seen_event_ids.count(feedback_event_id(tok)) == 1
    [stored] = await FeedbackResponses(served.sessions, TEST_MARKS).of_customer(CUSTOMER)
    assert (stored.score, stored.delivered, stored.journey_id) == (3, True, f"order-{order_id}")

    # A replay of the same submit is refused and changes nothing, in the journey either.
    before = await state_of(directory, order_id)
    replayed = await answer(served, tok, "10", "changed my mind")
    assert_page(replayed, 410)
    assert "already" in replayed.text.lower()
    assert_page(await served.http.get(f"/f/{tok}", params={"score": "10"}), 410)
    after = await state_of(directory, order_id)
    assert after.feedback == before.feedback
    assert after.seen_event_ids == before.seen_event_ids
    # The support branch goes on sending meanwhile; only events must not grow.
    assert _events(after) == _events(before)
    assert await served.count(FeedbackResponse) == 1
    await directory.cancel(order_id, "test over")


def _events(state: JourneyState) -> list[str]:
    return [entry.detail for entry in state.timeline if entry.kind == "event"]


def _planned(state: JourneyState) -> set[str]:
    """Steps the journey has done or scheduled (quiet hours may defer the follow-up)."""
    return set(state.steps) | {step.step for step in state.scheduled}


async def test_a_double_submit_is_one_event(served: Served, directory: JourneyDirectory) -> None:
    order_id = await delivered_journey(directory)
    tok = feedback_token(served, order_id)

    first, second = await asyncio.gather(answer(served, tok, "9"), answer(served, tok, "9"))

    assert sorted([first.status_code, second.status_code]) in ([200, 200], [200, 410])
    state = await eventually(
        lambda: state_of(directory, order_id), lambda s: s.feedback is not None
    )
    assert state.feedback is not None
    assert state.feedback.score == 9
    assert state.seen_event_ids.count(feedback_event_id(tok)) == 1
    assert await served.count(FeedbackResponse) == 1
    await directory.cancel(order_id, "test over")


async def test_an_ended_journey_gets_a_thank_you_and_the_answer_is_kept(
    served: Served, directory: JourneyDirectory
) -> None:
    order_id = await delivered_journey(directory)
    await directory.cancel(order_id, "ended before the customer answered")
    await eventually(
        lambda: directory.status(order_id),
        lambda status: status != WorkflowExecutionStatus.RUNNING,
    )
    tok = feedback_token(served, order_id)

    response = await answer(served, tok, "8", "fine")

    assert_page(response, 200)
    assert "Thank you" in response.text
    [stored] = await FeedbackResponses(served.sessions, TEST_MARKS).of_customer(CUSTOMER)
    assert (stored.score, stored.comment, stored.delivered) == (8, "fine", False)
    # An order that never had a journey is thanked the same way.
    never = feedback_token(served, "NEVER-EXISTED-1")
    assert_page(await answer(served, never, "5"), 200)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"score": ""}, "score is required"),
        ({}, "score is required"),
        ({"score": "11"}, "score must be a whole number"),
        ({"score": "7", "comment": "x" * 2001}, "comment must be at most 2000 characters"),
        ({"score": "7", "comment": "a\x00b"}, "comment must not contain NUL"),
        ({"score": "7", "rating": "5"}, "Unknown field"),
    ],
)
async def test_bad_answers_name_the_field_and_record_nothing(
    served: Served, directory: JourneyDirectory, data: dict[str, str], named: str
) -> None:
    order_id = await delivered_journey(directory)
    tok = feedback_token(served, order_id)

    response = await served.http.post(f"/f/{tok}", data={"token": tok, **data}, headers=SAME_ORIGIN)

    assert_page(response, 400)
    assert named in response.text
    assert await served.count(FeedbackResponse) == 0
    state = await state_of(directory, order_id)
    assert state.feedback is None
    # The link still works for a corrected answer.
    assert_page(await answer(served, tok, "7"), 200)
    await directory.cancel(order_id, "test over")


async def test_bad_links_and_cross_site_posts_change_nothing(served: Served) -> None:
    order_id = "BAD-LINKS-1"
    good = feedback_token(served, order_id)
    payload, _, rest = good.partition(".")
    altered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + rest
    wrong_purpose = served.signer.sign(LinkPurpose.PREFERENCES, CUSTOMER, f"order-{order_id}")
    foreign = LinkSigner("another-secret").sign(LinkPurpose.FEEDBACK, CUSTOMER, "order-X")
    for bad in (altered, good[:-4], wrong_purpose, foreign, "garbage"):
        assert_page(await served.http.get(f"/f/{bad}", params={"score": "5"}), 400)
        assert_page(await answer(served, bad, "5"), 400)

    expired = signer_at(datetime.now(UTC) - timedelta(days=61)).sign(
        LinkPurpose.FEEDBACK, CUSTOMER, f"order-{order_id}"
    )
    assert_page(await served.http.get(f"/f/{expired}", params={"score": "5"}), 410)
    assert_page(await answer(served, expired, "5"), 410)

    cross = await served.http.post(
        f"/f/{good}",
        data={"token": good, "score": "0"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert_page(cross, 403)
    mismatched = await served.http.post(
        f"/f/{good}", data={"token": altered, "score": "0"}, headers=SAME_ORIGIN
    )
    assert_page(mismatched, 400)
    assert await served.count(FeedbackResponse) == 0


async def test_temporal_out_of_reach_asks_to_retry_and_keeps_nothing(
    db_engine: AsyncEngine, directory: JourneyDirectory, tmp_path: Path
) -> None:
    # A real connection attempt to a port nobody listens on.
    nowhere = with_dev_secrets(
        Settings(_env_file=None, state_dir=tmp_path, temporal_address=f"127.0.0.1:{free_port()}")
    )
    reachable = [False]

    async def make() -> JourneyDirectory:
        if not reachable[0]:
            await connect(nowhere)
        return directory

    responses = FeedbackResponses(create_session_factory(db_engine), TEST_MARKS)
    async with served_app(
        db_engine, journeys=ConnectingJourneys(make), feedback_responses=responses
    ) as served:
        order_id = await delivered_journey(directory)
        tok = feedback_token(served, order_id)

        failed = await answer(served, tok, "2")
        assert_page(failed, 503)
        assert "try" in failed.text.lower()
        assert await served.count(FeedbackResponse) == 0

        reachable[0] = True
        retried = await answer(served, tok, "2")
        assert_page(retried, 200)
        state = await eventually(
            lambda: state_of(directory, order_id), lambda s: s.feedback is not None
        )
        assert state.feedback is not None
        assert state.feedback.score == 2
        await directory.cancel(order_id, "test over")


async def test_an_erased_customer_answer_is_thanked_and_not_kept(served: Served) -> None:
    async with served.sessions() as session, session.begin():
        session.add(ErasedCustomer(customer_hash=TEST_MARKS.digest(CUSTOMER)))
    # Erasure ends the customer's journeys, so the event finds none.
    tok = feedback_token(served, "ERASED-ORDER-1")

    response = await answer(served, tok, "1", "my words")

    assert_page(response, 200)
    assert await served.count(FeedbackResponse) == 0
