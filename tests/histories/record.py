"""Record one history per released journey path into tests/histories/*.json.

    make histories                      # the paths that have no history yet
    make histories FORCE="name ..."     # these again (a new plan version, say)

Each path runs the real workflow and activities in virtual time (time-skipping
server, real SMTP sink, throwaway ledger); every run of the journey (continue-as-
new starts new runs) is saved. test_replay.py replays them all, so a change that
would break a sleeping journey fails CI. Record again only for a *new* path or
plan; never re-record to make a failing replay pass: that is exactly the break
the replay exists to catch (use ``workflow.patched``, see docs/development.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import WorkflowFailureError, WorkflowHandle

from engine.devstack.mail_sink import MailSink
from engine.journeys.directory import initial_search_attributes
from engine.journeys.plans import deployment_plans
from engine.messaging.pauses import PauseRegistry, PauseScope, ScopeKind
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.logging import configure_logging
from tests.support.orders import COFFEE, domain_order
from tests.support.virtual_time import VirtualJourneys, virtual_journeys
from workflows.experiments import assign
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.orders import Address, LineItem, Order
from workflows.overrides import CustomerOverrides
from workflows.plans.catalogue import choose_plan
from workflows.plans.model import HOLDOUT_VARIANT, Category, Experiment, Variant
from workflows.state import JourneyInput, JourneyState
from workflows.vocabulary import Channel, EventType

HISTORIES = Path(__file__).parent
DAY = timedelta(days=1)
Handle = WorkflowHandle[OrderJourney, JourneyState]
Scenario = Callable[[VirtualJourneys], Awaitable[Handle]]


async def _delivered(journeys: VirtualJourneys, order_id: str, *, coffee: bool = False) -> Handle:
    items = [COFFEE] if coffee else None
    handle = await journeys.start(domain_order(order_id=order_id, items=items))
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.SHIPPED, event_id="shipped-1")
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    return handle


def _feedback(score: int) -> Scenario:
    async def run(journeys: VirtualJourneys) -> Handle:
        handle = await _delivered(journeys, f"H-FEEDBACK-{score}")
        await journeys.wait(handle, 9 * DAY)
        await journeys.event(handle, EventType.FEEDBACK, event_id="feedback-1", score=score)
        return handle

    return run


async def _no_answer(journeys: VirtualJourneys) -> Handle:
    return await _delivered(journeys, "H-NO-ANSWER")


async def _shipping_delay(journeys: VirtualJourneys) -> Handle:
    handle = await journeys.start(domain_order(order_id="H-DELAY"))
    await journeys.wait(handle, 5 * DAY)
    await journeys.event(handle, EventType.SHIPPED, event_id="shipped-1")
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")  # duplicate
    return handle


async def _order_cancelled(journeys: VirtualJourneys) -> Handle:
    handle = await journeys.start(domain_order(order_id="H-CANCELLED"))
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.CANCELLED, event_id="cancelled-1")
    return handle


async def _operator_stop(journeys: VirtualJourneys) -> Handle:
    handle = await _delivered(journeys, "H-STOPPED")
    await journeys.wait(handle, DAY)
    await handle.cancel()
    return handle


async def _returned(journeys: VirtualJourneys) -> Handle:
    handle = await _delivered(journeys, "H-RETURNED")
    await journeys.wait(handle, 2 * DAY)
    await journeys.event(handle, EventType.RETURN_REQUESTED, event_id="return-1")
    await journeys.wait(handle, 5 * DAY)
    await journeys.event(handle, EventType.REFUNDED, event_id="refund-1")
    return handle


async def _replenishment(journeys: VirtualJourneys) -> Handle:
    handle = await _delivered(journeys, "H-REPLENISH", coffee=True)
    await journeys.wait(handle, 60 * DAY)  # two reminders, continue-as-new between
    await journeys.event(handle, EventType.REORDERED, event_id="reordered-1")
    return handle


async def _plan_at_start(journeys: VirtualJourneys) -> Handle:
    """As the API starts journeys: the plan chosen and pinned in the input."""
    order = domain_order(order_id="H-PLAN-AT-START")
    plan = choose_plan(order, deployment_plans(journeys.settings))
    handle = await journeys.env.client.start_workflow(
        OrderJourney.run,
        JourneyInput(order=order, plan=plan, customer_has_other_journeys=False),
        id=journey_id_for(order.order_id),
        task_queue=journeys.settings.task_queue,
        search_attributes=initial_search_attributes(order),
    )
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.SHIPPED, event_id="shipped-1")
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    return handle


async def _experiment_promoter(journeys: VirtualJourneys) -> Handle:
    """A promoter's review request, whose subject the default plan tests."""
    handle = await _delivered(journeys, "H-EXPERIMENT-PROMOTER")
    await journeys.wait(handle, 9 * DAY)
    await journeys.event(handle, EventType.FEEDBACK, event_id="feedback-1", score=10)
    await journeys.wait(handle, DAY)
    return handle


async def _experiment_holdout(journeys: VirtualJourneys) -> Handle:
    """A customer held out of the thank-you's experiment (a plan given at start)."""
    experiment = Experiment(
        id="thanks-holdout",
        holdout=0.5,
        variants=(Variant(name="control"), Variant(name="short", subject="Thanks!")),
    )
    customer = next(
        f"cus-h-{n}" for n in range(1000) if assign(f"cus-h-{n}", experiment) == HOLDOUT_VARIANT
    )
    order = domain_order(order_id="H-EXPERIMENT-HOLDOUT", customer_id=customer)
    pinned = choose_plan(order, deployment_plans(journeys.settings))
    steps = tuple(
        dataclasses.replace(step, experiment=experiment) if step.id == "thank_you" else step
        for step in pinned.plan.steps
    )
    plan = dataclasses.replace(pinned, plan=dataclasses.replace(pinned.plan, steps=steps))
    handle = await journeys.env.client.start_workflow(
        OrderJourney.run,
        JourneyInput(order=order, plan=plan, customer_has_other_journeys=False),
        id=journey_id_for(order.order_id),
        task_queue=journeys.settings.task_queue,
        search_attributes=initial_search_attributes(order),
    )
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.SHIPPED, event_id="shipped-1")
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    await journeys.wait(handle, DAY)
    return handle


async def _cap_stale(journeys: VirtualJourneys) -> Handle:
    """Two journeys of one customer ask for a review at the same instant: one is sent,
    the other could only go out three days later, past its stale_after, and is dropped
    (the one recorded)."""
    customer = f"cus-{uuid.uuid4().hex[:8]}"
    handles = [
        await _delivered_order(journeys, domain_order(order_id=f"H-CAP-{n}", customer_id=customer))
        for n in (1, 2)
    ]
    await journeys.wait(handles[0], 9 * DAY)
    for handle in handles:
        await journeys.event(handle, EventType.FEEDBACK, event_id="feedback-1", score=10)
    states = [
        await journeys.until(handle, lambda s: "review_request" in s.steps) for handle in handles
    ]
    [dropped] = [
        handle
        for handle, state in zip(handles, states, strict=True)
        if state.steps["review_request"].detail.startswith("stale")
    ]
    return dropped


async def _cap_deferred(journeys: VirtualJourneys) -> Handle:
    """Two consumables of one customer run out together: one reminder goes, the other
    waits three days for its slot under the marketing cap (the one recorded)."""
    customer = f"cus-{uuid.uuid4().hex[:8]}"
    tea = LineItem(
        sku="TEA-GRN-100",
        name="Sencha 100 g",
        category="tea",
        quantity=2,
        unit_price_minor=990,
        consumption_days=14,
    )
    orders = [
        domain_order(order_id=f"H-CAP-DEFER-{n}", customer_id=customer, items=[item])
        for n, item in ((1, COFFEE), (2, tea))
    ]
    handles = [await journeys.start(order) for order in orders]
    for handle in handles:
        await journeys.until(handle, lambda s: "order_confirmation" in s.steps)
    delivered_at = await journeys.now()
    for handle in handles:
        event = await journeys.order_event(
            EventType.DELIVERED, event_id="delivered-1", occurred_at=delivered_at
        )
        await handle.signal(OrderJourney.record_event, event)
    await journeys.wait(handles[0], 24 * DAY)
    states = [
        await journeys.until(handle, lambda s: bool(s.deferred) or bool(s.reminders_sent))
        for handle in handles
    ]
    [waiting] = [h for h, s in zip(handles, states, strict=True) if s.deferred]
    await journeys.wait(waiting, 4 * DAY)
    for handle in handles:
        if handle is not waiting:
            await handle.cancel()
    await journeys.event(waiting, EventType.REORDERED, event_id="reordered-1")
    return waiting


async def _cancel_during_send(journeys: VirtualJourneys) -> Handle:
    """An operator cancels while the confirmation's send waits between attempts."""
    email = f"busy-{uuid.uuid4().hex[:8]}@example.test"
    journeys.sink.handler.refusals[email] = "451 4.2.0 mailbox busy, try later"
    handle = await journeys.start(domain_order(order_id="H-CANCEL-IN-SEND", email=email))
    for _ in range(600):
        pending = (await handle.describe()).raw_description.pending_activities
        if any(activity.attempt >= 2 for activity in pending):
            break
        await asyncio.sleep(0.1)
    await handle.cancel()
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    del journeys.sink.handler.refusals[email]
    return handle


async def _preferences_changed(journeys: VirtualJourneys) -> Handle:
    """The customer refuses marketing by email after delivery: the review ask is skipped."""
    handle = await _delivered(journeys, "H-PREFERENCES")
    await journeys.wait(handle, DAY)
    refused = CustomerOverrides(refused={Channel.EMAIL: [Category.MARKETING]}, revision=1)
    await handle.signal(OrderJourney.preferences_changed, refused)
    await journeys.wait(handle, 8 * DAY)
    await journeys.event(handle, EventType.FEEDBACK, event_id="feedback-1", score=10)
    return handle


async def _address_changed(journeys: VirtualJourneys) -> Handle:
    handle = await journeys.start(domain_order(order_id="H-ADDRESS"))
    await journeys.wait(handle, DAY)
    moved = Address(
        name="Jane Doe",
        line1="Oranienstraße 7",
        city="Berlin",
        postal_code="10997",
        country_code="DE",
    )
    await journeys.event(handle, EventType.ADDRESS_CHANGED, event_id="moved-1", new_address=moved)
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.SHIPPED, event_id="shipped-1")
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    return handle


async def _sms_fallback(journeys: VirtualJourneys) -> Handle:
    """A customer with a phone in a deployment without Twilio: the texts the plan
    prefers are unavailable and the journey falls back to email."""
    order = domain_order(order_id="H-SMS-FALLBACK", phone="+4915112345678")
    handle = await journeys.start(order)
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.SHIPPED, event_id="shipped-1")
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.OUT_FOR_DELIVERY, event_id="out-1")
    await journeys.wait(handle, timedelta(hours=5))
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    return handle


async def _push_devices(journeys: VirtualJourneys) -> Handle:
    """Push first on the shipping and delivery news: a customer known to have no app
    device gets the shipping notice by email with no push send; told of a device, the
    delivered notice tries push (unavailable here, no FCM) and falls back."""
    without = CustomerOverrides(has_push_device=False)
    handle = await journeys.start(domain_order(order_id="H-PUSH-DEVICES"), overrides=without)
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.SHIPPED, event_id="shipped-1")
    await journeys.wait(handle, DAY)
    with_device = CustomerOverrides(has_push_device=True, revision=1)
    await handle.signal(OrderJourney.preferences_changed, with_device)
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    return handle


async def _refund_during_retry(journeys: VirtualJourneys) -> Handle:
    """The cross-sell retries through a mail server deferring for hours when a refund
    arrives: it is cancelled, the refund confirmed."""
    email = f"retrying-{uuid.uuid4().hex[:8]}@example.test"
    handle = await journeys.start(domain_order(order_id="H-REFUND-IN-RETRY", email=email))
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    await journeys.wait(handle, 19 * DAY)
    journeys.sink.handler.refusals[email] = "451 4.2.0 mailbox busy, try later"
    await journeys.wait(handle, 2 * DAY)
    for _ in range(600):
        pending = (await handle.describe()).raw_description.pending_activities
        if any(activity.attempt >= 2 for activity in pending):
            break
        await asyncio.sleep(0.1)
    await journeys.event(handle, EventType.REFUNDED, event_id="refund-1")
    await journeys.until(handle, lambda s: "cross_sell" in s.steps)
    del journeys.sink.handler.refusals[email]
    return handle


@contextlib.asynccontextmanager
async def _pauses(journeys: VirtualJourneys) -> AsyncIterator[PauseRegistry]:
    """The pause registry of the journeys' database; every pause lifted afterwards."""
    engine = create_engine(journeys.settings.resolved_database_url)
    registry = PauseRegistry(create_session_factory(engine))
    try:
        yield registry
    finally:
        for pause in await registry.active():
            await registry.resume(pause.id)
        await engine.dispose()


async def _paused_then_resumed(journeys: VirtualJourneys) -> Handle:
    """Every cross-sell is paused: the journey's is held when due and asked again
    (1 h, 2 h, 4 h later), then sent once the pause is lifted and the journey told."""
    async with _pauses(journeys) as pauses:
        handle = await _delivered(journeys, "H-PAUSED-RESUMED")
        pause = await pauses.pause(PauseScope(ScopeKind.STEP, "cross_sell"))
        await journeys.wait(handle, 21 * DAY + 3 * timedelta(hours=1))
        await journeys.until(handle, lambda s: "cross_sell" in s.held)
        await pauses.resume(pause.id)
        await handle.signal(OrderJourney.sending_resumed)
        await journeys.until(handle, lambda s: "cross_sell" in s.steps)
        return handle


async def _paused_until_stale(journeys: VirtualJourneys) -> Handle:
    """Every marketing message is paused for longer than the cross-sell's stale_after:
    it is held, then dropped (and recorded) at its stale limit."""
    async with _pauses(journeys) as pauses:
        handle = await _delivered(journeys, "H-PAUSED-STALE")
        await pauses.pause(PauseScope(ScopeKind.CATEGORY, "marketing"))
        await journeys.wait(handle, 24 * DAY)
        await journeys.until(handle, lambda s: "cross_sell" in s.steps)
        return handle


async def _journey_paused(journeys: VirtualJourneys) -> Handle:
    """An operator pauses one journey after delivery: its thank-you is held until
    the journey is resumed the next day; the delivery notice was not held."""
    handle = await journeys.start(domain_order(order_id="H-JOURNEY-PAUSED"))
    await journeys.wait(handle, DAY)
    await handle.signal(OrderJourney.pause_journey)
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    await journeys.wait(handle, DAY)
    await handle.signal(OrderJourney.resume_journey)
    await journeys.until(handle, lambda s: "thank_you" in s.steps)
    return handle


async def _delivered_order(journeys: VirtualJourneys, order: Order) -> Handle:
    handle = await journeys.start(order)
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED, event_id="delivered-1")
    return handle


SCENARIOS: dict[str, Scenario] = {
    "default_promoter": _feedback(10),
    "default_passive": _feedback(8),
    "default_detractor": _feedback(3),
    "default_no_answer": _no_answer,
    "default_shipping_delay": _shipping_delay,
    "default_order_cancelled": _order_cancelled,
    "default_operator_stop": _operator_stop,
    "default_returned": _returned,
    "consumables_replenishment": _replenishment,
    "default_plan_at_start": _plan_at_start,
    "default_frequency_cap_stale": _cap_stale,
    "consumables_frequency_cap_deferred": _cap_deferred,
    "default_cancel_during_send": _cancel_during_send,
    "default_preferences_changed": _preferences_changed,
    "default_address_changed": _address_changed,
    "default_sms_fallback": _sms_fallback,
    # Push skipped without an app device, tried once one is known (plan v3).
    "default_push_devices": _push_devices,
    # Sends held by pauses (the pausable-sends patch).
    "default_paused_then_resumed": _paused_then_resumed,
    "default_paused_until_stale": _paused_until_stale,
    "default_journey_paused": _journey_paused,
    # Journeys whose sends run beside the loop (the sends-beside-events patch).
    "beside_plan_at_start": _plan_at_start,
    "beside_detractor": _feedback(3),
    "beside_returned": _returned,
    "beside_refund_during_retry": _refund_during_retry,
    "beside_replenishment": _replenishment,
    # Steps with an experiment (the experiments patch): the default plan's review
    # request subject test, and a customer held out of one.
    "experiment_promoter": _experiment_promoter,
    "experiment_holdout": _experiment_holdout,
    # Stage changes and ends reported by a local activity (the journey-events patch),
    # the operator's cancel included: its report runs after the cancellation.
    "events_detractor": _feedback(3),
    "events_operator_stop": _operator_stop,
}


async def _record(journeys: VirtualJourneys, name: str, scenario: Scenario) -> list[Path]:
    handle = await scenario(journeys)
    # The operator-stop path ends cancelled: that failure is its history.
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    client = journeys.env.client
    written = []
    run_id: str | None = (await client.get_workflow_handle(handle.id).describe()).run_id
    # Walk back from the last run to the first through continue-as-new links.
    runs = []
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
    for run, history in enumerate(reversed(runs), start=1):
        suffix = f".run{run}" if len(runs) > 1 else ""
        path = HISTORIES / f"{name}{suffix}.json"
        path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
        written.append(path)
    return written


def _recorded(name: str) -> bool:
    return any(HISTORIES.glob(f"{name}.json")) or any(HISTORIES.glob(f"{name}.run*.json"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", nargs="*", default=[], help="record these paths again")
    forced = set(parser.parse_args().force)
    unknown = forced - set(SCENARIOS)
    if unknown:
        parser.error(f"no such path: {', '.join(sorted(unknown))}")
    wanted = {name: run for name, run in SCENARIOS.items() if name in forced or not _recorded(name)}
    if not wanted:
        print("every path has a history; --force NAME records one again")
        return
    configure_logging("WARNING")
    # A fixed start keeps the recorded local times readable: Tue 2027-06-01 09:00 UTC.
    start = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        sink = MailSink("127.0.0.1", 0, None)
        await sink.start()
        try:
            # Pauses hold at once: the worker reads them for every send.
            async with virtual_journeys(Path(tmp), sink, pause_cache_seconds=0) as journeys:
                await journeys.travel_to(start)
                for name, scenario in wanted.items():
                    for path in await _record(journeys, name, scenario):
                        print(f"recorded {path.relative_to(HISTORIES.parent.parent)}")
        finally:
            await sink.stop()


if __name__ == "__main__":
    asyncio.run(main())
