"""Pausing sending, in virtual time with the real workflow, activities, SMTP sink and
ledger: a paused step's timer fires and nothing goes out, the journey shows the step
held (state, timeline, JourneyPaused); lifted and told, it sends once; held past its
stale limit it is dropped and recorded; transactional messages are held only
explicitly; a journey started while a pause is in force is held too; one journey's
own pause and resume; an event while a send is held still takes effect.

The tests travel forward in virtual time, so they keep the order they are written in.
Every test lifts the pauses it made: they hold every journey of the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from engine.devstack.mail_sink import MailSink
from engine.messaging.ledger import LedgerEntry, MessageLedger
from engine.messaging.pauses import Pause, PauseRegistry, PauseScope, ScopeKind
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import MessageStatus
from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, resolved, sent_steps, virtual_journeys
from workflows import search_attributes as sa
from workflows.order_journey import (
    PAUSE_RECHECK_FIRST,
    PAUSE_RECHECK_LONGEST,
    OrderJourney,
    pause_recheck,
)
from workflows.state import JourneyState, StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
TZ = "Europe/Berlin"
Journey = WorkflowHandle[OrderJourney, JourneyState]


@pytest.fixture(scope="module")
async def journeys(
    mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[VirtualJourneys]:
    # The worker reads the pauses for every send, so a pause made here holds at once.
    async with virtual_journeys(
        tmp_path_factory.mktemp("paused"), mail_sink, pause_cache_seconds=0
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def database(journeys: VirtualJourneys) -> AsyncIterator[tuple[PauseRegistry, MessageLedger]]:
    engine = create_engine(journeys.settings.resolved_database_url)
    sessions = create_session_factory(engine)
    yield PauseRegistry(sessions), MessageLedger(sessions)
    await engine.dispose()


@pytest.fixture
async def pauses(
    database: tuple[PauseRegistry, MessageLedger],
) -> AsyncIterator[PauseRegistry]:
    registry = database[0]
    yield registry
    for pause in await registry.active():
        await registry.resume(pause.id)


@pytest.fixture
def ledger(database: tuple[PauseRegistry, MessageLedger]) -> MessageLedger:
    return database[1]


async def journey_paused(handle: Journey) -> bool | None:
    return (await handle.describe()).typed_search_attributes.get(sa.JOURNEY_PAUSED)


async def current_details(handle: Journey) -> str:
    """What the Temporal UI shows as the journey's current details."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def delivered_journey(journeys: VirtualJourneys) -> Journey:
    await journeys.travel_to_local("09:00", TZ, not_before=await journeys.now())
    handle = await journeys.start(domain_order())
    await journeys.until(handle, resolved("order_confirmation"))
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.until(handle, resolved("delivered"))
    return handle


async def rows_for(ledger: MessageLedger, handle: Journey, step: str) -> list[LedgerEntry]:
    return [entry for entry in await ledger.for_journey(handle.id) if entry.step == step]


def held_notes(state: JourneyState, step: str) -> list[str]:
    return [e.detail for e in state.timeline if e.detail.startswith(f"{step}: held")]


def paused_by(pause: Pause) -> str:
    return f"paused by {pause.id} ({pause.scope})"


async def test_a_paused_step_is_held_when_due_and_sent_once_when_sending_resumes(
    journeys: VirtualJourneys, pauses: PauseRegistry, ledger: MessageLedger
) -> None:
    handle = await delivered_journey(journeys)
    assert await journey_paused(handle) is None  # never paused: no attribute at all
    pause = await pauses.pause(PauseScope(ScopeKind.STEP, "cross_sell"), reason="bad price")

    # The cross-sell falls due 21 days after delivery at 11:00; a day later it is
    # still held (stale after 2 days), asked again meanwhile (pause_recheck).
    await journeys.wait(handle, 22 * DAY)
    state = await journeys.until(handle, lambda s: "cross_sell" in s.held)

    assert "cross_sell" not in state.steps
    assert state.held["cross_sell"].reason == paused_by(pause)
    assert not state.held["cross_sell"].by_journey
    [scheduled] = [s for s in state.scheduled if s.step == "cross_sell"]
    assert scheduled.held == paused_by(pause)
    # Asked again after as long as it was held when last asked (that ask lies between
    # since and now; virtual time may have moved past the due time since the query).
    since, now = state.held["cross_sell"].since, await journeys.now()
    assert since + PAUSE_RECHECK_FIRST <= scheduled.due_at <= now + pause_recheck(now - since)
    assert state.next_step.startswith(f"cross_sell held ({paused_by(pause)}); asked again at")
    [note] = held_notes(state, "cross_sell")  # once, however often it was asked again
    assert note.startswith(f"cross_sell: held, {paused_by(pause)}; dropped if still held at")
    assert state.paused
    assert await journey_paused(handle) is True
    assert (await current_details(handle)).startswith(f"**Paused:** cross_sell {paused_by(pause)}")
    assert "cross_sell" not in journeys.steps_mailed(handle.id)
    assert await rows_for(ledger, handle, "cross_sell") == []
    # Meanwhile the rest of the journey went on.
    assert {"thank_you", "product_education", "feedback_request"} <= set(sent_steps(state))

    await pauses.resume(pause.id)
    await handle.signal(OrderJourney.sending_resumed)
    done = await journeys.until(handle, resolved("cross_sell"))

    assert done.steps["cross_sell"].outcome == StepOutcome.SENT
    assert journeys.steps_mailed(handle.id).count("cross_sell") == 1
    [row] = await rows_for(ledger, handle, "cross_sell")
    assert row.status == MessageStatus.SENT
    assert "sending resumed: cross_sell asked again" in [e.detail for e in done.timeline]
    assert done.held == {}
    assert not done.paused
    assert await journey_paused(handle) is False
    assert "Paused" not in await current_details(handle)
    await handle.cancel()


async def test_a_message_paused_past_its_stale_limit_is_dropped_and_recorded(
    journeys: VirtualJourneys, pauses: PauseRegistry, ledger: MessageLedger
) -> None:
    handle = await delivered_journey(journeys)
    pause = await pauses.pause(PauseScope(ScopeKind.TEMPLATE, "cross_sell"))

    # Past the cross-sell's stale limit (2 days after its trigger) and then some.
    await journeys.wait(handle, 24 * DAY)
    state = await journeys.until(handle, resolved("cross_sell"))

    record = state.steps["cross_sell"]
    assert record.outcome == StepOutcome.SKIPPED
    assert record.detail.startswith(f"stale: {paused_by(pause)} until past its stale limit")
    [row] = await rows_for(ledger, handle, "cross_sell")
    assert row.status == MessageStatus.SKIPPED
    assert (row.error or "").startswith(f"stale: {paused_by(pause)}")
    assert "cross_sell" not in journeys.steps_mailed(handle.id)
    assert state.held == {}
    assert await journey_paused(handle) is False
    # Lifting the pause later sends nothing.
    await pauses.resume(pause.id)
    await handle.signal(OrderJourney.sending_resumed)
    await journeys.wait(handle, HOUR)
    assert "cross_sell" not in journeys.steps_mailed(handle.id)
    await handle.cancel()


async def test_transactional_messages_are_held_only_by_a_pause_that_says_so_even_at_start(
    journeys: VirtualJourneys, pauses: PauseRegistry
) -> None:
    await pauses.pause(PauseScope(ScopeKind.CATEGORY, "marketing"))
    plan_wide = await pauses.pause(PauseScope(ScopeKind.PLAN, "default"))

    first = await journeys.start(domain_order())
    sent = await journeys.until(first, resolved("order_confirmation"))
    assert sent.steps["order_confirmation"].outcome == StepOutcome.SENT

    await pauses.resume(plan_wide.id)
    everything = await pauses.pause(
        PauseScope(ScopeKind.PLAN, "default"), include_transactional=True
    )
    second = await journeys.start(domain_order())
    held = await journeys.until(second, lambda s: "order_confirmation" in s.held)

    assert held.held["order_confirmation"].reason == paused_by(everything)
    assert held.held["order_confirmation"].transactional
    assert "order_confirmation" not in journeys.steps_mailed(second.id)
    # No stale limit for the order's own news: it waits for the pause to end.
    assert not any("dropped if" in note for note in held_notes(held, "order_confirmation"))
    assert await journey_paused(second) is True

    await pauses.resume(everything.id)
    await second.signal(OrderJourney.sending_resumed)
    done = await journeys.until(second, resolved("order_confirmation"))

    assert done.steps["order_confirmation"].outcome == StepOutcome.SENT
    assert journeys.steps_mailed(second.id) == ["order_confirmation"]
    await first.cancel()
    await second.cancel()


async def test_one_journeys_own_pause_holds_its_sends_until_it_is_resumed(
    journeys: VirtualJourneys,
) -> None:
    await journeys.travel_to_local("09:00", TZ, not_before=await journeys.now())
    handle = await journeys.start(domain_order())
    other = await journeys.start(domain_order())
    await journeys.until(handle, resolved("order_confirmation"))

    await handle.signal(OrderJourney.pause_journey_all)
    await journeys.event(handle, EventType.SHIPPED)
    held = await journeys.until(handle, lambda s: "shipping_notice" in s.held)

    assert held.held["shipping_notice"].by_journey
    assert held.held["shipping_notice"].reason == "the journey is paused"
    assert "shipping_notice" not in journeys.steps_mailed(handle.id)
    assert await journey_paused(handle) is True

    # Lowered to its non-transactional sends: the shipping notice goes at once.
    await handle.signal(OrderJourney.pause_journey)
    await journeys.until(handle, resolved("shipping_notice"))
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.event(other, EventType.DELIVERED)
    await journeys.until(handle, resolved("delivered"))
    await journeys.wait(handle, 5 * HOUR)  # the thank-you is due 4 hours after delivery
    thanks_held = await journeys.until(handle, lambda s: "thank_you" in s.held)
    thanked = await journeys.until(other, resolved("thank_you"))

    assert "thank_you" not in thanks_held.steps
    assert thanked.steps["thank_you"].outcome == StepOutcome.SENT  # the other journey's
    assert journeys.steps_mailed(handle.id) == [
        "order_confirmation",
        "shipping_notice",
        "delivered",
    ]
    assert thanks_held.journey_pause is not None
    assert await journey_paused(handle) is True

    await handle.signal(OrderJourney.resume_journey)
    done = await journeys.until(handle, resolved("thank_you"))

    assert done.steps["thank_you"].outcome == StepOutcome.SENT
    assert journeys.steps_mailed(handle.id).count("thank_you") == 1
    assert done.journey_pause is None
    assert done.held == {}
    notes = [e.detail for e in done.timeline]
    assert "journey paused by an operator: all its sends are held" in notes
    assert "journey paused by an operator: its non-transactional sends are held" in notes
    assert "journey resumed by an operator: thank_you due again" in notes
    assert await journey_paused(handle) is False
    await handle.cancel()
    await other.cancel()


async def test_an_event_while_a_send_is_held_still_takes_effect(
    journeys: VirtualJourneys, pauses: PauseRegistry
) -> None:
    handle = await delivered_journey(journeys)
    await pauses.pause(PauseScope(ScopeKind.STEP, "thank_you"))
    await journeys.wait(handle, 5 * HOUR)
    await journeys.until(handle, lambda s: "thank_you" in s.held)
    assert await journey_paused(handle) is True

    await journeys.event(handle, EventType.CANCELLED)
    final = await handle.result()

    assert final.stage == Stage.ORDER_CANCELLED
    assert final.steps["thank_you"].outcome == StepOutcome.SKIPPED
    assert final.steps["thank_you"].detail == "order cancelled"
    assert final.steps["order_cancelled"].outcome == StepOutcome.SENT
    assert "thank_you" not in journeys.steps_mailed(handle.id)
    assert final.held == {}
    assert await journey_paused(handle) is False


def test_a_held_send_is_asked_again_ever_less_often() -> None:
    """1 h, 2 h, 4 h, 8 h, 16 h after it was first held, then every 12 h: two days of a
    pause cost 8 askings, not 48."""
    stale_after = 2 * DAY
    asked, at = [], timedelta(0)
    while (at := at + pause_recheck(at)) < stale_after:
        asked.append(at)
    asked.append(stale_after)  # the last asking, at the stale limit: dropped
    assert asked == [timedelta(hours=h) for h in (1, 2, 4, 8, 16, 28, 40, 48)]
    assert pause_recheck(30 * DAY) == PAUSE_RECHECK_LONGEST
