"""The support desk never stops or holds up a journey, in virtual time with a real
HTTP desk: a desk that refuses the ticket is recorded, a desk that is down is retried
with backoff beside the journey (which keeps applying events and sending their
confirmations) until it is back or the budget runs out, and the desk hears of an
unhappy customer whether or not the apology reached them."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from engine.devstack.mail_sink import MailSink
from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, resolved, sent_steps, virtual_journeys
from workflows.ids import order_id_from
from workflows.order_journey import OrderJourney
from workflows.state import JourneyState, StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
TZ = "Europe/Berlin"


@dataclass
class Desk:
    """A desk answering every ticket with ``status`` (201 opens it), counting calls."""

    url: str = ""
    status: int = 201
    calls: list[str] = field(default_factory=list)  # order ids, one per call

    def calls_for(self, order_id: str) -> int:
        return self.calls.count(order_id)


@pytest.fixture(scope="module")
def desk() -> Iterator[Desk]:
    desk = Desk()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            desk.calls.append(str(body.get("order_id")))
            reply = json.dumps({"id": f"T-{len(desk.calls)}"}).encode()
            self.send_response(desk.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    desk.url = f"http://127.0.0.1:{server.server_address[1]}/tickets"
    try:
        yield desk
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
async def desk_journeys(
    mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory, desk: Desk
) -> AsyncIterator[VirtualJourneys]:
    async with virtual_journeys(
        tmp_path_factory.mktemp("virtual-desk-faults"), mail_sink, support_webhook_url=desk.url
    ) as running:
        yield running


Journey = WorkflowHandle[OrderJourney, JourneyState]


async def unhappy(journeys: VirtualJourneys, email: str = "jane.doe@example.test") -> Journey:
    """A delivered order whose customer answers the feedback request with a 3."""
    await journeys.travel_to_local("09:00", TZ)
    handle = await journeys.start(domain_order(email=email))
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.wait(handle, 8 * DAY)
    await journeys.until(handle, resolved("feedback_request"))
    await journeys.event(handle, EventType.FEEDBACK, score=3)
    return handle


def notes(state: JourneyState, text: str) -> list[str]:
    return [entry.detail for entry in state.timeline if text in entry.detail]


async def test_a_desk_that_refuses_the_ticket_is_recorded_and_the_journey_goes_on(
    desk_journeys: VirtualJourneys, desk: Desk
) -> None:
    desk.status = 422
    try:
        handle = await unhappy(desk_journeys)
        final = await handle.result()
    finally:
        desk.status = 201
    order_id = order_id_from(handle.id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert final.stage == Stage.COMPLETED
    assert "detractor_follow_up" in sent_steps(final)
    assert notes(final, "support ticket") == [
        "support ticket not opened: support desk refused the ticket: HTTP 422"
    ]
    assert desk.calls_for(order_id) == 1  # a refusal is not retried


async def test_a_desk_that_is_down_holds_up_nothing_and_is_told_once_it_is_back(
    desk_journeys: VirtualJourneys, desk: Desk
) -> None:
    journeys = desk_journeys
    desk.status = 500
    try:
        handle = await unhappy(journeys)
        order_id = order_id_from(handle.id)
        await journeys.until(handle, resolved("detractor_follow_up"))
        await journeys.wait(handle, 3 * HOUR)
        down_calls = desk.calls_for(order_id)
        # Retried with backoff, not hammered: 5 s doubling to half an hour.
        assert 3 <= down_calls <= 15

        # The customer sends the goods back while the desk is still down: the refund
        # is applied and confirmed at once.
        await journeys.event(handle, EventType.REFUNDED)
        state = await journeys.until(handle, resolved("refund_confirmation"))
        assert state.steps["refund_confirmation"].outcome == StepOutcome.SENT
        assert state.stage == Stage.RETURNED
        assert "refund_confirmation" in journeys.steps_mailed(handle.id)
        assert not notes(state, "support ticket")
    finally:
        desk.status = 201

    await journeys.wait(handle, 2 * HOUR)
    state = await journeys.until(
        handle,
        lambda s: bool(notes(s, "support ticket opened")),
    )
    assert len(notes(state, "support ticket")) == 1
    final = await handle.result()
    assert final.stage == Stage.COMPLETED
    assert final.steps["refund_confirmation"].outcome == StepOutcome.SENT
    assert desk.calls_for(order_id) > down_calls


async def test_a_desk_down_past_its_budget_is_recorded_and_the_journey_ends_normally(
    desk_journeys: VirtualJourneys, desk: Desk
) -> None:
    desk.status = 503
    try:
        handle = await unhappy(desk_journeys)
        final = await handle.result()
    finally:
        desk.status = 201
    order_id = order_id_from(handle.id)
    assert final.stage == Stage.COMPLETED
    [note] = notes(final, "support ticket")
    assert note.startswith("support ticket not opened: the desk could not be reached for 2 days")
    calls = desk.calls_for(order_id)
    assert 10 <= calls <= 200, calls  # two days of backoff capped at 30 minutes


async def test_the_desk_hears_of_an_unhappy_customer_the_apology_did_not_reach(
    desk_journeys: VirtualJourneys, desk: Desk, mail_sink: MailSink
) -> None:
    email = "unreachable.detractor@example.test"
    # The mailbox is gone: every message bounces, the apology too.
    mail_sink.handler.refusals[email] = "550 5.1.1 no such user"
    try:
        handle = await unhappy(desk_journeys, email=email)
        state = await desk_journeys.until(handle, lambda s: bool(notes(s, "support ticket")))
    finally:
        del mail_sink.handler.refusals[email]
    assert state.steps["detractor_follow_up"].outcome != StepOutcome.SENT
    assert notes(state, "support ticket") == [f"support ticket opened T-{len(desk.calls)}"]
    assert desk.calls_for(order_id_from(handle.id)) == 1
