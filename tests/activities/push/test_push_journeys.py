"""Push through the parts as ``aftercare run`` wires them: devices registered through
the gRPC API (DevicesService), a journey whose plan lists ``push`` first, the real
worker sending through FCM's HTTP v1 API to the local fake (token from the fake's
OAuth endpoint), the message ledger, and consent checked at the moment of sending.
Real Temporal dev server, SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aftercare.v1 import devices_pb2 as devices_pb
from aftercare.v1 import journey_pb2 as journey_pb
from aftercare.v1 import preferences_pb2 as preferences_pb
from pydantic import SecretStr
from temporalio.client import Client

from clients import AftercareClient
from engine.access.api_keys import ApiKeyStore
from engine.access.scopes import ALL_SCOPES
from engine.devstack.fcm_fake import FakePush, FcmFake, serve_fcm_fake
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.messaging.ledger import MessageLedger
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.api import ServingApi, serving_api
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.support.databases import sqlite_url
from tests.support.net import free_port
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.orders import Order

# Confirmation by push first; a marketing message at once (no quiet hours in this
# plan, so the test does not depend on the time of day it runs at).
PUSH_PLAN = """
id: push_first
version: 1
description: Push first, email when push cannot reach the customer.
quiet_hours: null
steps:
  - id: order_confirmation
    trigger: {on: start}
    category: transactional
    template: order_confirmation
    channels: [push, email]
  - id: restock
    trigger: {on: start}
    category: marketing
    template: replenishment_reminder
    channels: [push, email]
"""


def new_token(kind: str) -> str:
    """A registration token of its own per test (the tests share one stack)."""
    return f"e{kind}Token:APA91bH_{uuid.uuid4().hex}"


@dataclass
class PushStack:
    fcm: FcmFake
    client: AftercareClient
    api: ServingApi
    sink: MailSink
    database: str
    # Customer id -> their orders started here.
    orders: dict[str, list[str]] = field(default_factory=dict)

    async def start(self, order: Order) -> str:
        self.orders.setdefault(order.customer.id, []).append(order.order_id)
        return (await self.api.parts.directory.start(order)).journey_id

    async def pushes_to(self, token: str) -> list[FakePush]:
        return [push for push in self.fcm.messages if push.token == token]

    async def pushes_to_customer(self, customer_id: str) -> list[FakePush]:
        """Pushes of this customer's journeys (the data names the journey)."""
        journeys = {f"order-{o}" for o in self.orders.get(customer_id, [])}
        return [p for p in self.fcm.messages if p.message["data"]["journey_id"] in journeys]


@asynccontextmanager
async def push_stack(
    server: TemporalDevServer, temporal: Client, sink: MailSink, tmp_path: Path
) -> AsyncIterator[PushStack]:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "push_first.yaml").write_text(PUSH_PLAN)
    async with serve_fcm_fake("127.0.0.1", 0, tmp_path / "push") as fcm:
        settings = with_dev_secrets(
            Settings(
                _env_file=None,
                state_dir=tmp_path,
                temporal_address=server.address,
                task_queue=f"push-{uuid.uuid4().hex[:8]}",
                database_url=database,
                smtp_port=sink.port,
                grpc_port=free_port(),
                plans_dir=plans,
                fcm_project_id=fcm.project_id,
                fcm_service_account=SecretStr(fcm.service_account().to_json()),
                fcm_api_base_url=fcm.base_url,
            )
        )
        engine = create_engine(database)
        try:
            key = await ApiKeyStore(create_session_factory(engine)).create("tests", ALL_SCOPES)
        finally:
            await engine.dispose()
        async with (
            serving_api(temporal, settings, grace_seconds=1) as api,
            AftercareClient(settings.grpc_target, api_key=key.token) as client,
            journey_worker(temporal, settings) as worker,
            worker,
        ):
            yield PushStack(fcm, client, api, sink, database)


@pytest.fixture(scope="module")
async def stack(
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mail_sink: MailSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[PushStack]:
    # One stack for the module: each test has its own customer and order.
    folder = tmp_path_factory.mktemp("push")
    async with push_stack(temporal_server, temporal_client, mail_sink, folder) as built:
        yield built


def customer() -> str:
    return f"cus-push-{uuid.uuid4().hex[:8]}"


async def ledger_rows(stack: PushStack, journey_id: str) -> dict[str, tuple[str, str]]:
    """Per step, the channel that sent it and "sent" (or the last row's channel and
    status while none has)."""
    engine = create_engine(stack.database)
    try:
        entries = await MessageLedger(create_session_factory(engine)).for_journey(journey_id)
    finally:
        await engine.dispose()
    rows: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if rows.get(entry.step, ("", ""))[1] != "sent":
            rows[entry.step] = (entry.channel, entry.status)
    return rows


def both_sent(rows: dict[str, tuple[str, str]]) -> bool:
    return all(rows.get(step, ("", ""))[1] == "sent" for step in ("order_confirmation", "restock"))


async def test_a_journey_pushes_to_every_device_and_forgets_an_unregistered_one(
    stack: PushStack,
) -> None:
    customer_id = customer()
    client = stack.client
    android, web, gone = new_token("Android"), new_token("Web"), new_token("Uninstalled")
    stack.fcm.unregistered.add(gone)
    await client.register_device(customer_id, android, devices_pb.DEVICE_PLATFORM_ANDROID)
    await client.register_device(customer_id, web, devices_pb.DEVICE_PLATFORM_WEB)
    await client.register_device(customer_id, gone, devices_pb.DEVICE_PLATFORM_IOS)
    order = domain_order(customer_id=customer_id, locale="de")
    journey_id = await stack.start(order)

    rows = await eventually(
        lambda: ledger_rows(stack, journey_id),
        lambda rows: both_sent(rows),
    )
    assert rows["order_confirmation"] == ("push", "sent")
    assert rows["restock"] == ("push", "sent")
    for token in (android, web):
        pushes = await stack.pushes_to(token)
        assert len(pushes) == 2  # one per step, once each
        confirmation = next(p for p in pushes if p.message["data"]["step"] == "order_confirmation")
        # Rendered in the customer's language, opening their order.
        assert confirmation.message["notification"]["title"] == (
            f"Bestellung {order.order_id} erhalten"
        )
        assert confirmation.message["data"]["link"].endswith(f"/orders/{order.order_id}")
        assert confirmation.path is not None
        assert confirmation.path.exists()
    # FCM said the uninstalled app's token is gone: the device is removed.
    assert await stack.pushes_to(gone) == []
    listed = (await client.list_devices(customer_id)).devices
    assert sorted(d.platform for d in listed) == [
        devices_pb.DEVICE_PLATFORM_ANDROID,
        devices_pb.DEVICE_PLATFORM_WEB,
    ]
    # Push reached the customer: no email for either step.
    assert not [
        m for m in stack.sink.handler.received if m.message["X-Aftercare-Journey"] == journey_id
    ]
    journey = await client.get_journey(order.order_id)
    assert {s.channel for s in journey.sent if s.step == "order_confirmation"} == {
        journey_pb.CHANNEL_PUSH
    }


async def test_a_customer_without_devices_gets_the_steps_next_channel(stack: PushStack) -> None:
    order = domain_order(customer_id=customer())
    journey_id = await stack.start(order)
    rows = await eventually(
        lambda: ledger_rows(stack, journey_id),
        lambda rows: both_sent(rows),
    )
    assert rows["order_confirmation"] == ("email", "sent")
    assert await stack.pushes_to_customer(order.customer.id) == []


async def test_a_customer_who_refused_marketing_by_push_gets_it_by_email(
    stack: PushStack,
) -> None:
    customer_id = customer()
    client = stack.client
    android = new_token("Android")
    await client.register_device(customer_id, android, devices_pb.DEVICE_PLATFORM_ANDROID)
    await client.unsubscribe(
        customer_id,
        category=preferences_pb.MESSAGE_CATEGORY_MARKETING,
        channel=journey_pb.CHANNEL_PUSH,
    )
    order = domain_order(customer_id=customer_id)
    journey_id = await stack.start(order)
    rows = await eventually(
        lambda: ledger_rows(stack, journey_id),
        lambda rows: both_sent(rows),
    )
    # The order confirmation needs no consent; the marketing message does.
    assert rows["order_confirmation"] == ("push", "sent")
    assert rows["restock"] == ("email", "sent")
    steps = [p.message["data"]["step"] for p in await stack.pushes_to(android)]
    assert steps == ["order_confirmation"]
