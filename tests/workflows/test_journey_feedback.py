"""Feedback in virtual time: follow-ups by score, the support desk told about a
detractor (a real HTTP receiver), and the single reminder when nobody answers."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.devstack.mail_sink import MailSink
from tests.support.orders import domain_order
from tests.support.virtual_time import (
    VirtualJourneys,
    local,
    resolved,
    sent_steps,
    virtual_journeys,
)
from workflows.state import StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)
TZ = "Europe/Berlin"


@dataclass(frozen=True)
class Ticket:
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, object]


@dataclass
class SupportDesk:
    url: str
    tickets: list[Ticket] = field(default_factory=list)

    def for_order(self, order_id: str) -> list[Ticket]:
        return [ticket for ticket in self.tickets if ticket.body.get("order_id") == order_id]


@pytest.fixture(scope="module")
def support_desk() -> Iterator[SupportDesk]:
    """A support desk webhook on 127.0.0.1 that records each JSON POST."""
    desk = SupportDesk(url="")

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            headers = {name.lower(): value for name, value in self.headers.items()}
            desk.tickets.append(Ticket(self.path, headers, body))
            reply = json.dumps({"id": f"T-{len(desk.tickets)}"}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output quiet

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
    mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory, support_desk: SupportDesk
) -> AsyncIterator[VirtualJourneys]:
    """Journeys whose worker tells the support desk above about detractors."""
    async with virtual_journeys(
        tmp_path_factory.mktemp("virtual-desk"), mail_sink, support_webhook_url=support_desk.url
    ) as running:
        yield running


async def test_detractor_gets_help_support_is_told_and_marketing_stops(
    desk_journeys: VirtualJourneys, support_desk: SupportDesk
) -> None:
    journeys = desk_journeys
    await journeys.travel_to_local("09:00", TZ)
    order = domain_order(name="Erika Mustermann", email="erika.mustermann@example.test")
    handle = await journeys.start(order)
    await journeys.event(handle, EventType.SHIPPED)
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.wait(handle, 8 * DAY)  # past the feedback request (delivery + 7 d)
    await journeys.until(handle, resolved("feedback_request"))
    assert support_desk.for_order(order.order_id) == []

    await journeys.event(handle, EventType.FEEDBACK, score=3)
    state = await journeys.until(
        handle, lambda s: any("support ticket opened" in e.detail for e in s.timeline)
    )

    assert sent_steps(state)[-1] == "detractor_follow_up"
    assert state.marketing_blocked
    tickets = support_desk.for_order(order.order_id)
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket.path == "/tickets"
    assert ticket.body["score"] == 3
    assert ticket.body["order_id"] == order.order_id
    assert ticket.body["journey_id"] == handle.id
    assert ticket.body["customer_id"] == order.customer.id
    assert ticket.headers["idempotency-key"] == f"{handle.id}/support_ticket"
    assert ticket.headers["content-type"].startswith("application/json")
    raw = json.dumps(ticket.body).lower()
    for personal in ("erika", "mustermann", order.customer.email, "kastanienallee"):
        assert personal not in raw
    opened = [e.detail for e in state.timeline if "support ticket" in e.detail]
    assert opened == ["support ticket opened T-" + str(support_desk.tickets.index(ticket) + 1)]

    final = await handle.result()
    assert sent_steps(final) == [
        "order_confirmation",
        "shipping_notice",
        "delivered",
        "thank_you",
        "product_education",
        "feedback_request",
        "detractor_follow_up",
    ]
    assert journeys.steps_mailed(handle.id) == sent_steps(final)
    skipped = {k: r.detail for k, r in final.steps.items() if r.outcome == StepOutcome.SKIPPED}
    assert skipped["cross_sell"] == "no marketing after unhappy feedback"
    assert skipped["feedback_reminder"] == "not needed: feedback happened first"
    assert skipped["review_request"] == "no marketing after unhappy feedback"
    assert skipped["passive_thanks"] == "feedback score 3 outside 7-8"
    assert final.stage == Stage.COMPLETED
    assert len(support_desk.for_order(order.order_id)) == 1  # told once, no retries


async def test_passive_gets_thanks_and_nothing_else_for_the_score(
    desk_journeys: VirtualJourneys, support_desk: SupportDesk
) -> None:
    journeys = desk_journeys
    await journeys.travel_to_local("09:00", TZ)
    order = domain_order()
    handle = await journeys.start(order)
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.wait(handle, 8 * DAY)
    await journeys.until(handle, resolved("feedback_request"))

    await journeys.event(handle, EventType.FEEDBACK, score=8)
    state = await journeys.until(handle, resolved("passive_thanks"))
    assert sent_steps(state)[-1] == "passive_thanks"
    assert not state.marketing_blocked

    final = await handle.result()
    sent = sent_steps(final)
    assert sent[sent.index("feedback_request") + 1 :] == ["passive_thanks", "cross_sell"]
    assert journeys.steps_mailed(handle.id) == sent
    skipped = {k: r.detail for k, r in final.steps.items() if r.outcome == StepOutcome.SKIPPED}
    assert skipped["detractor_follow_up"] == "feedback score 8 outside 0-6"
    assert skipped["review_request"] == "feedback score 8 outside 9-10"
    assert skipped["feedback_reminder"] == "not needed: feedback happened first"
    assert support_desk.for_order(order.order_id) == []
    assert not any("support ticket" in entry.detail for entry in final.timeline)


async def test_no_answer_gets_one_reminder_then_the_journey_completes(
    desk_journeys: VirtualJourneys,
) -> None:
    journeys = desk_journeys
    await journeys.travel_to_local("09:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.event(handle, EventType.DELIVERED)  # 09:00 local

    final = await handle.result()

    sent = sent_steps(final)
    assert sent == [
        "order_confirmation",
        "delivered",
        "thank_you",
        "product_education",
        "feedback_request",
        "feedback_reminder",
        "cross_sell",
    ]
    assert journeys.steps_mailed(handle.id) == sent  # one request, one reminder
    delivered_day = local(final.events[EventType.DELIVERED], TZ).date()
    request = local(final.steps["feedback_request"].at, TZ)
    reminder = local(final.steps["feedback_reminder"].at, TZ)
    assert (request.date(), request.hour, request.minute) == (delivered_day + 7 * DAY, 10, 0)
    assert (reminder.date(), reminder.hour, reminder.minute) == (request.date() + 3 * DAY, 10, 0)
    skipped = {k: r.detail for k, r in final.steps.items() if r.outcome == StepOutcome.SKIPPED}
    assert "detractor_follow_up" not in final.steps  # never answered: nothing by score
    assert skipped == {"shipping_delay": "not needed: delivered happened first"}

    # Nothing left to send after the cross-sell: it lingers 14 days, then ends.
    assert final.stage == Stage.COMPLETED
    ended = final.timeline[-1]
    assert ended.detail == "journey ended"
    linger = ended.at - final.steps["cross_sell"].at
    assert timedelta(days=14) <= linger < timedelta(days=14, minutes=1)
