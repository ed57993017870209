"""Push first on the shipped plans' shipping and delivery news, in virtual time: the
real worker and activities, the FCM fake, a real SQLite database, the mail sink.

A customer with an app device gets the shipping notice by push (the fake keeps it, the
ledger says push); one known to have none gets it by email and no push send is even
scheduled; a journey that does not know (overrides from before devices were told)
tries push as it always did; a device registered, or the last one removed, while the
journey sleeps decides how its next step goes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowHandle

from engine.customers.devices.journeys import DeviceChanges
from engine.customers.journey_link import JourneyNotifier, StoredChoices
from engine.customers.preferences import PreferenceStore
from engine.devstack.fcm_fake import FcmFake, serve_fcm_fake
from engine.devstack.mail_sink import MailSink
from engine.messaging.ledger import MessageLedger
from engine.messaging.push_devices import Platform, PushDevices, device_id_of
from engine.platform.codec.runtime import erasure_marks_for
from engine.platform.database.connection import create_engine, create_session_factory
from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, resolved, virtual_journeys
from workflows.contracts import channel_task_queue
from workflows.order_journey import OrderJourney
from workflows.orders import Order, Shipment
from workflows.overrides import CustomerOverrides
from workflows.state import JourneyState, StepOutcome
from workflows.vocabulary import Channel, EventType

TZ = "Europe/Berlin"
DAY = timedelta(days=1)

Handle = WorkflowHandle[OrderJourney, JourneyState]


@dataclass
class StartedJourneys:
    """``PreferenceSignals`` for the time-skipping server, which lists no workflows:
    the journeys this test started, by customer (what visibility would answer)."""

    handles: dict[str, list[Handle]] = field(default_factory=dict)

    async def signal_preferences(self, customer_id: str, overrides: CustomerOverrides) -> int:
        for handle in self.handles.get(customer_id, []):
            await handle.signal(OrderJourney.preferences_changed, overrides)
        return len(self.handles.get(customer_id, []))


@dataclass
class Rig:
    journeys: VirtualJourneys
    fcm: FcmFake
    devices: PushDevices
    choices: StoredChoices
    changes: DeviceChanges
    started: StartedJourneys
    ledger: MessageLedger

    async def start(self, order: Order) -> Handle:
        """As the directory starts a journey: with the customer's overrides read then."""
        overrides = await self.choices.at_start(order.customer.id)
        handle = await self.journeys.start(order, overrides=overrides)
        self.started.handles.setdefault(order.customer.id, []).append(handle)
        return handle

    async def register(self, customer_id: str, token: str) -> None:
        previous = await self.devices.owner_of(device_id_of(token))
        await self.devices.register(customer_id, token, Platform.ANDROID, datetime.now(UTC))
        await self.changes.registered(customer_id, previous)

    async def remove(self, customer_id: str, token: str) -> None:
        assert await self.devices.remove(customer_id, device_id_of(token))
        await self.changes.removed(customer_id)

    async def shipped(self, handle: Handle) -> JourneyState:
        event = await self.journeys.order_event(
            EventType.SHIPPED,
            shipment=Shipment(
                carrier="DHL", tracking_number="JD014600001", tracking_url="https://t.example/1"
            ),
        )
        await handle.signal(OrderJourney.record_event, event)
        return await self.journeys.until(handle, resolved("shipping_notice"))

    def pushes(self, handle: Handle) -> list[dict[str, str]]:
        return [
            push.message["data"]
            for push in self.fcm.messages
            if push.message["data"].get("journey_id") == handle.id
        ]


@pytest.fixture(scope="module")
async def rig(mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    folder = tmp_path_factory.mktemp("push")
    async with (
        serve_fcm_fake("127.0.0.1", 0, folder / "push") as fcm,
        virtual_journeys(
            folder,
            mail_sink,
            fcm_project_id=fcm.project_id,
            fcm_service_account=SecretStr(fcm.service_account().to_json()),
            fcm_api_base_url=fcm.base_url,
        ) as journeys,
    ):
        engine = create_engine(journeys.settings.resolved_database_url)
        sessions = create_session_factory(engine)
        store = PreferenceStore(sessions, erasure_marks_for(journeys.settings))
        devices = PushDevices(sessions)
        started = StartedJourneys()
        try:
            yield Rig(
                journeys,
                fcm,
                devices,
                StoredChoices(store),
                DeviceChanges(devices, JourneyNotifier(store, started), store),
                started,
                MessageLedger(sessions),
            )
        finally:
            await engine.dispose()


def new_order() -> Order:
    tag = uuid.uuid4().hex[:10]
    return domain_order(customer_id=f"cus-{tag}", email=f"{tag}@example.test", timezone=TZ)


def new_token() -> str:
    return f"dev{uuid.uuid4().hex}:APA91bH_journey_push"


async def push_sends_scheduled(rig: Rig, handle: Handle) -> int:
    """How many send activities the journey scheduled on the push channel's queue."""
    queue = channel_task_queue(rig.journeys.settings.task_queue, Channel.PUSH)
    history = await handle.fetch_history()
    return sum(
        1
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.task_queue.name == queue
    )


async def ledger_channels(rig: Rig, handle: Handle, step: str) -> dict[str, str]:
    """The step's ledger rows: channel -> status."""
    return {
        entry.channel: entry.status
        for entry in await rig.ledger.for_journey(handle.id)
        if entry.step == step
    }


async def test_a_customer_with_an_app_device_gets_the_shipping_notice_by_push(rig: Rig) -> None:
    await rig.journeys.travel_to_local("10:00", TZ)
    order = new_order()
    await rig.register(order.customer.id, new_token())
    handle = await rig.start(order)

    state = await rig.shipped(handle)

    notice = state.steps["shipping_notice"]
    assert (notice.outcome, notice.detail) == (StepOutcome.SENT, "by push")
    assert [push["step"] for push in rig.pushes(handle)] == ["shipping_notice"]
    # Kept as a file too, as `make run` shows it.
    kept = [push.path for push in rig.fcm.messages if push.path is not None]
    assert any(handle.id in path.read_text() for path in kept)
    assert await ledger_channels(rig, handle, "shipping_notice") == {"push": "sent"}
    assert "shipping_notice" not in rig.journeys.steps_mailed(handle.id)
    await handle.cancel()


async def test_a_customer_without_devices_gets_it_by_email_and_no_push_is_tried(
    rig: Rig,
) -> None:
    await rig.journeys.travel_to_local("10:00", TZ)
    order = new_order()
    handle = await rig.start(order)

    state = await rig.shipped(handle)

    notice = state.steps["shipping_notice"]
    assert notice.outcome == StepOutcome.SENT
    assert notice.detail == "by email after push: no app device registered"
    assert "shipping_notice" in rig.journeys.steps_mailed(handle.id)
    assert await push_sends_scheduled(rig, handle) == 0
    assert await ledger_channels(rig, handle, "shipping_notice") == {"email": "sent"}
    assert not rig.pushes(handle)
    await handle.cancel()


async def test_a_journey_that_does_not_know_the_devices_tries_push_as_before(
    rig: Rig,
) -> None:
    await rig.journeys.travel_to_local("10:00", TZ)
    order = new_order()
    handle = await rig.journeys.start(order)  # no overrides: as journeys started earlier

    state = await rig.shipped(handle)

    notice = state.steps["shipping_notice"]
    assert notice.outcome == StepOutcome.SENT
    assert notice.detail.startswith("by email after push: unavailable")
    assert await push_sends_scheduled(rig, handle) == 1
    assert "shipping_notice" in rig.journeys.steps_mailed(handle.id)
    await handle.cancel()


async def test_a_device_registered_while_the_journey_sleeps_gets_the_next_step_by_push(
    rig: Rig,
) -> None:
    await rig.journeys.travel_to_local("10:00", TZ)
    order = new_order()
    handle = await rig.start(order)
    await rig.journeys.wait(handle, DAY)  # asleep, waiting for the parcel

    await rig.register(order.customer.id, new_token())
    state = await rig.journeys.until(
        handle, lambda s: s.overrides is not None and s.overrides.has_push_device is True
    )
    assert any("an app device" in entry.detail for entry in state.timeline)

    state = await rig.shipped(handle)
    assert state.steps["shipping_notice"].detail == "by push"
    assert [push["step"] for push in rig.pushes(handle)] == ["shipping_notice"]
    assert await push_sends_scheduled(rig, handle) == 1
    await handle.cancel()


async def test_the_last_device_removed_while_the_journey_sleeps_falls_back_at_once(
    rig: Rig,
) -> None:
    await rig.journeys.travel_to_local("10:00", TZ)
    order = new_order()
    phone, tablet = new_token(), new_token()
    await rig.register(order.customer.id, phone)
    await rig.register(order.customer.id, tablet)
    handle = await rig.start(order)
    await rig.journeys.wait(handle, DAY)

    await rig.remove(order.customer.id, phone)  # one left: nothing to tell
    state = await handle.query(OrderJourney.state)
    assert state.overrides is not None
    assert state.overrides.has_push_device is True
    await rig.remove(order.customer.id, tablet)
    await rig.journeys.until(
        handle, lambda s: s.overrides is not None and s.overrides.has_push_device is False
    )

    state = await rig.shipped(handle)
    assert state.steps["shipping_notice"].detail == (
        "by email after push: no app device registered"
    )
    assert await push_sends_scheduled(rig, handle) == 0
    assert not rig.pushes(handle)
    await handle.cancel()


async def test_a_token_fcm_no_longer_knows_is_forgotten_and_the_journey_told(
    rig: Rig,
) -> None:
    await rig.journeys.travel_to_local("10:00", TZ)
    order = new_order()
    token = new_token()
    await rig.register(order.customer.id, token)
    handle = await rig.start(order)
    rig.fcm.unregistered.add(token)  # the app was uninstalled

    state = await rig.shipped(handle)
    assert state.steps["shipping_notice"].detail.startswith("by email after push: unavailable")
    assert not await rig.devices.of_customer(order.customer.id)
    # The worker's telling finds no journeys here (the time-skipping server lists no
    # workflows; the dev server test in tests/engine/customers covers it): told as
    # the worker tells them, through DeviceChanges ...
    await rig.changes.forgotten(order.customer.id)
    await rig.journeys.until(
        handle, lambda s: s.overrides is not None and s.overrides.has_push_device is False
    )
    # ... so the next push step costs no activity.
    await handle.signal(
        OrderJourney.record_event, await rig.journeys.order_event(EventType.OUT_FOR_DELIVERY)
    )
    state = await rig.journeys.until(handle, resolved("out_for_delivery"))
    assert "push: no app device registered" in state.steps["out_for_delivery"].detail
    assert await push_sends_scheduled(rig, handle) == 1  # the shipping notice's only
    await handle.cancel()
