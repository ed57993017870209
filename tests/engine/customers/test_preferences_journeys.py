"""Preference changes reach running journeys at once: the real dev server (with
visibility), a real worker, the real gRPC API, SQLite and PostgreSQL, the mail sink.

An opt-out makes a sleeping journey skip its marketing steps (and say why) and
nothing of that category is sent; a new preferred channel changes what the next
step uses; stored preferences reach a journey when it starts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aftercare.v1 import journey_pb2 as jpb
from aftercare.v1 import preferences_pb2 as pb
from starlette.applications import Starlette
from starlette.routing import Route
from temporalio.client import Client

from engine.customers.consent import ConsentLedger
from engine.customers.pages.unsubscribe import UnsubscribeLinks
from engine.devstack.mail_sink import MailSink
from engine.messaging.ledger import MessageLedger
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.links.tokens import LinkPurpose, LinkSigner
from tests.support.marks import TEST_MARKS
from tests.support.orders import domain_order
from tests.support.preferences import PreferencesStack, preferences_stack
from tests.support.waiting import eventually
from workflows.order_journey import OrderJourney
from workflows.orders import Feedback, Order, OrderEvent
from workflows.plans.model import Category
from workflows.state import JourneyState, StepOutcome
from workflows.vocabulary import Channel, EventType


@pytest.fixture
async def stack(
    temporal_client: Client, database_url: str, tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[PreferencesStack]:
    async with preferences_stack(temporal_client, database_url, tmp_path, mail_sink) as running:
        yield running


def midday_zone() -> str:
    """A fixed-offset zone where it is now between 11:00 and 13:59, so steps with a
    09:00-20:00 window or the plan's quiet hours are due at once."""
    hour = datetime.now(UTC).hour
    offset = 12 - hour  # local = UTC + offset
    if offset > 14:
        offset -= 24
    if offset < -12:
        offset += 24
    # Etc/GMT signs are inverted: Etc/GMT-5 is UTC+5.
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


def new_order(*, phone: str = "", timezone: str = "Europe/Berlin") -> Order:
    tag = uuid.uuid4().hex[:10]
    return domain_order(
        customer_id=f"cus-{tag}", email=f"{tag}@example.test", phone=phone, timezone=timezone
    )


def event(kind: EventType, *, score: int | None = None) -> OrderEvent:
    return OrderEvent(
        event_id=f"{kind}-{uuid.uuid4().hex[:6]}",
        type=kind,
        occurred_at=datetime.now(UTC),
        feedback=Feedback(score=score) if score is not None else None,
    )


async def state_until(
    stack: PreferencesStack, order: Order, accept: Callable[[JourneyState], bool]
) -> JourneyState:
    handle = stack.temporal.get_workflow_handle_for(OrderJourney.run, f"order-{order.order_id}")
    return await eventually(lambda: handle.query(OrderJourney.state), accept, seconds=30)


async def visible(stack: PreferencesStack, order: Order) -> None:
    """Until visibility lists the journey as running (what notify relies on)."""
    directory = stack.parts.directory
    await eventually(
        lambda: directory.customer_journeys(order.customer.id, running_only=True),
        lambda journeys: len(journeys) == 1,
    )


def mailed_steps(sink: MailSink, order: Order) -> list[str]:
    return [
        str(mail.message["X-Aftercare-Step"])
        for mail in sink.handler.received
        if mail.message["X-Aftercare-Journey"] == f"order-{order.order_id}"
    ]


async def test_an_opt_out_reaches_a_sleeping_journey_which_skips_its_marketing(
    stack: PreferencesStack, mail_sink: MailSink, database_url: str
) -> None:
    zone = midday_zone()
    opted_out, control = new_order(timezone=zone), new_order(timezone=zone)
    for order in (opted_out, control):
        await stack.parts.directory.start(order)
        await stack.parts.directory.record_event(order.order_id, event(EventType.DELIVERED))
        # Asleep: the thank-you is hours away, the cross-sell weeks away.
        await state_until(
            stack, order, lambda s: {"thank_you", "cross_sell"} <= {x.step for x in s.scheduled}
        )
        await visible(stack, order)

    answer = await stack.client.unsubscribe(
        opted_out.customer.id, category=pb.MESSAGE_CATEGORY_MARKETING, source="footer"
    )
    assert answer.journeys_notified == 1

    reason = "the customer opted out of marketing messages by email"
    state = await state_until(stack, opted_out, lambda s: "cross_sell" in s.steps)
    assert state.steps["cross_sell"].outcome == StepOutcome.SKIPPED
    assert state.steps["cross_sell"].detail == reason
    assert ("skip", f"cross_sell: {reason}") in [(e.kind, e.detail) for e in state.timeline]
    scheduled = {step.step for step in state.scheduled}
    assert "cross_sell" not in scheduled
    assert "thank_you" in scheduled  # relationship messages were not refused
    assert state.overrides is not None
    assert state.overrides.refused == {
        channel: [Category.MARKETING]
        for channel in (Channel.EMAIL, Channel.SMS, Channel.WHATSAPP, Channel.PUSH)
    }

    # A promoter's score makes the review request (marketing) due at once: the
    # control customer gets it, the one who opted out does not.
    for order in (opted_out, control):
        await stack.parts.directory.record_event(
            order.order_id, event(EventType.FEEDBACK, score=10)
        )
        await state_until(stack, order, lambda s: "review_request" in s.steps)
    control_state = await state_until(stack, control, lambda s: "review_request" in s.steps)
    assert control_state.steps["review_request"].outcome == StepOutcome.SENT
    await eventually(
        lambda: _async(mailed_steps(mail_sink, control)), lambda s: "review_request" in s
    )
    state = await state_until(stack, opted_out, lambda s: "review_request" in s.steps)
    assert state.steps["review_request"].outcome == StepOutcome.SKIPPED
    assert state.steps["review_request"].detail == reason
    assert "review_request" not in mailed_steps(mail_sink, opted_out)
    assert "order_confirmation" in mailed_steps(mail_sink, opted_out)  # transactional still goes

    engine = create_engine(database_url)
    try:
        ledger = MessageLedger(create_session_factory(engine))
        rows = await ledger.for_journey(f"order-{opted_out.order_id}")
    finally:
        await engine.dispose()
    assert {row.step for row in rows}.isdisjoint({"review_request", "cross_sell"})


async def _async(value: list[str]) -> list[str]:
    return value


async def test_a_new_preferred_channel_changes_what_the_next_step_uses(
    stack: PreferencesStack,
) -> None:
    # No Twilio account is configured here, so SMS and WhatsApp are unavailable, and
    # the customer has no app device: the plan's order (push, sms, whatsapp, email)
    # reaches email only after push is passed over and two refusals.
    phone = "+4915151234567"
    preferring, control = new_order(phone=phone), new_order(phone=phone)
    for order in (preferring, control):
        await stack.parts.directory.start(order)
        await state_until(stack, order, lambda s: "order_confirmation" in s.steps)
    await visible(stack, preferring)

    answer = await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(
            customer_id=preferring.customer.id, preferred_channel=jpb.CHANNEL_EMAIL
        )
    )
    assert answer.journeys_notified == 1
    await state_until(
        stack,
        preferring,
        lambda s: s.overrides is not None and s.overrides.preferred_channel == Channel.EMAIL,
    )

    for order in (preferring, control):
        await stack.parts.directory.record_event(order.order_id, event(EventType.DELIVERED))
    preferred = await state_until(stack, preferring, lambda s: "delivered" in s.steps)
    plain = await state_until(stack, control, lambda s: "delivered" in s.steps)
    assert preferred.steps["delivered"].detail == "by email"
    assert plain.steps["delivered"].detail.startswith(
        "by email after push: no app device registered; sms: "
    )
    [sent] = [m for m in preferred.sent if m.step == "delivered"]
    assert sent.channel == Channel.EMAIL


async def test_stored_preferences_reach_a_journey_when_it_starts(
    stack: PreferencesStack,
) -> None:
    order = new_order(timezone="Europe/Berlin")
    await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(
            customer_id=order.customer.id,
            timezone="America/New_York",
            preferred_channel=jpb.CHANNEL_EMAIL,
            quiet_hours=pb.QuietHours(start="20:00", end="10:00"),
            consents=[pb.ConsentChange(category=pb.MESSAGE_CATEGORY_FEEDBACK, granted=False)],
        )
    )
    await stack.parts.directory.start(order)
    await stack.parts.directory.record_event(order.order_id, event(EventType.DELIVERED))
    state = await state_until(stack, order, lambda s: "feedback_request" in s.steps)
    overrides = state.overrides
    assert overrides is not None
    assert overrides.timezone == "America/New_York"
    assert overrides.preferred_channel == Channel.EMAIL
    assert overrides.quiet_hours is not None
    assert (overrides.quiet_hours.start, overrides.quiet_hours.end) == ("20:00", "10:00")
    assert state.timezone == "America/New_York"
    # Local times are shown in the customer's chosen zone.
    assert all(step.due_local.endswith(("-05:00", "-04:00")) for step in state.scheduled)
    # Feedback refused on every channel: the request is skipped at once, not sent.
    assert state.steps["feedback_request"].outcome == StepOutcome.SKIPPED
    assert "feedback" in state.steps["feedback_request"].detail


async def test_a_one_click_unsubscribe_reaches_the_running_journey(
    stack: PreferencesStack, database_url: str
) -> None:
    # The HTTP unsubscribe link (RFC 8058 one-click) with the journeys wired in, as
    # the HTTP app wires it: the journey hears of the opt-out at once.
    order = new_order()
    await stack.parts.directory.start(order)
    await stack.parts.directory.record_event(order.order_id, event(EventType.DELIVERED))
    await state_until(stack, order, lambda s: "cross_sell" in {x.step for x in s.scheduled})
    await visible(stack, order)

    signer = LinkSigner("test-secret")
    token = signer.sign(LinkPurpose.UNSUBSCRIBE, order.customer.id, f"order-{order.order_id}")
    engine = create_engine(database_url)
    try:
        links = UnsubscribeLinks(
            ConsentLedger(create_session_factory(engine), TEST_MARKS),
            signer,
            stack.parts.notifier.notify_preferences_changed,
        )
        app = Starlette(routes=[Route("/u/{token}", links.unsubscribe, methods=["POST"])])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://links.test"
        ) as http:
            response = await http.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    finally:
        await engine.dispose()
    assert response.status_code == 200

    state = await state_until(stack, order, lambda s: "cross_sell" in s.steps)
    assert state.steps["cross_sell"].outcome == StepOutcome.SKIPPED
    assert "opted out of marketing" in state.steps["cross_sell"].detail
