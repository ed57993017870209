"""Record one history per released journey path into tests/histories/*.json.

    make histories

Each path runs the real workflow and activities in virtual time (time-skipping
server, real SMTP sink, throwaway ledger); every run of the journey (continue-as-
new starts new runs) is saved. test_replay.py replays them all, so a change that
would break a sleeping journey fails CI. Record again only for a *new* path or
plan; never re-record to make a failing replay pass: that is exactly the break
the replay exists to catch (use ``workflow.patched``, see the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import WorkflowFailureError, WorkflowHandle

from engine.devstack.mail_sink import MailSink
from engine.platform.logging import configure_logging
from tests.support.orders import COFFEE, domain_order
from tests.support.virtual_time import VirtualJourneys, virtual_journeys
from workflows.order_journey import OrderJourney
from workflows.state import JourneyState
from workflows.vocabulary import EventType

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


async def main() -> None:
    configure_logging("WARNING")
    # A fixed start keeps the recorded local times readable: Tue 2027-06-01 09:00 UTC.
    start = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        sink = MailSink("127.0.0.1", 0, None)
        await sink.start()
        try:
            async with virtual_journeys(Path(tmp), sink) as journeys:
                await journeys.travel_to(start)
                for name, scenario in SCENARIOS.items():
                    for path in await _record(journeys, name, scenario):
                        print(f"recorded {path.relative_to(HISTORIES.parent.parent)}")
        finally:
            await sink.stop()


if __name__ == "__main__":
    asyncio.run(main())
