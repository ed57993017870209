"""Journey events reach subscribers as Standard Webhooks: signed (checked by the
library in a real HTTP receiver), in order per journey, without personal data unless
asked, and nothing lost while the subscriber is down and the worker restarts (real
dev server, worker, API, SMTP sink and database)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aftercare.v1 import journey_pb2 as pb
from temporalio.client import Client

from clients import AftercareClient
from engine.cli.samples import sample_order
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.api import serving_api
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.engine.integrations.webhook_receiver import Received, Receiver, webhook_receiver
from tests.support.api_keys import all_scopes_key
from tests.support.databases import sqlite_url
from tests.support.net import free_port
from tests.support.waiting import eventually
from workflows.ids import journey_id_for


@dataclass
class Stack:
    settings: Settings
    client: AftercareClient
    receiver: Receiver


@pytest.fixture
async def stack(
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mail_sink: MailSink,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            temporal_address=temporal_server.address,
            task_queue=f"webhooks-{uuid.uuid4().hex[:8]}",
            database_url=database,
            smtp_port=mail_sink.port,
            grpc_port=free_port(),
        )
    )
    api_key = await all_scopes_key(database)
    async with (
        webhook_receiver() as receiver,
        serving_api(temporal_client, settings, grace_seconds=1),
        AftercareClient(settings.grpc_target, api_key=api_key) as client,
    ):
        yield Stack(settings, client, receiver)


def confirmation_events(order_id: str) -> set[str]:
    journey = journey_id_for(order_id)
    return {
        f"journey.started:{journey}",
        f"message.sent:{journey}/order_confirmation/0/email",
    }


def first_arrivals(received: list[Received]) -> list[Received]:
    seen: set[str] = set()
    first = []
    for item in received:
        if item.webhook_id not in seen:
            seen.add(item.webhook_id)
            first.append(item)
    return first


def check_delivery(received: list[Received]) -> None:
    """What holds for every subscriber: the webhook id is the event's id, a repeat
    is the same event, and each journey's events arrive in the order they happened."""
    by_id: dict[str, Received] = {}
    for item in received:
        assert item.data["event_id"] == item.webhook_id
        earlier = by_id.setdefault(item.webhook_id, item)
        assert earlier.body == item.body, "a repeated webhook-id carried another event"
    last_sequence: dict[str, int] = {}
    for item in first_arrivals(received):
        journey = item.data["journey_id"]
        assert item.data["sequence"] > last_sequence.get(journey, 0), (
            f"{journey}: {item.type} arrived after a later event"
        )
        last_sequence[journey] = item.data["sequence"]


async def test_journey_events_arrive_signed_in_order_and_survive_a_down_subscriber_and_restart(
    stack: Stack, temporal_client: Client
) -> None:
    client, receiver = stack.client, stack.receiver
    plain = await client.create_subscription(receiver.url_for("crm"))
    receiver.secrets["crm"] = plain.secret
    personal = await client.create_subscription(
        receiver.url_for("desk"),
        ["journey.started", "feedback.received", "detractor"],
        include_personal_data=True,
    )
    receiver.secrets["desk"] = personal.secret
    assert plain.secret.startswith("whsec_")
    listed = await client.list_subscriptions()
    assert [s.subscription_id for s in listed.subscriptions] == [
        plain.subscription.subscription_id,
        personal.subscription.subscription_id,
    ]

    orders = [f"WH-{uuid.uuid4().hex[:10]}" for _ in range(5)]
    expected: set[str] = set()

    async def crm_ids() -> set[str]:
        return {item.webhook_id for item in receiver.accepted.get("crm", [])}

    async with journey_worker(temporal_client, stack.settings) as worker, worker:
        for variant, order_id in enumerate(orders[:3]):
            await client.start_journey(sample_order(order_id, variant))
            expected |= confirmation_events(order_id)
        await client.record_event(
            orders[0],
            pb.OrderEvent(
                event_id="fb-1",
                type=pb.EVENT_TYPE_FEEDBACK,
                feedback=pb.Feedback(score=3, comment="The box arrived crushed"),
            ),
        )
        detractor_journey = journey_id_for(orders[0])
        expected |= {
            f"feedback.received:{detractor_journey}:fb-1",
            f"detractor:{detractor_journey}:fb-1",
        }
        await eventually(crm_ids, lambda ids: expected <= ids, seconds=60)

        # The subscriber goes down; journeys go on, and the worker restarts meanwhile.
        receiver.failing = True
        for variant, order_id in enumerate(orders[3:], start=3):
            await client.start_journey(sample_order(order_id, variant))
            expected |= confirmation_events(order_id)

        async def failures() -> int:
            return receiver.failed_requests

        await eventually(failures, lambda count: count >= 1, seconds=30)

    async with journey_worker(temporal_client, stack.settings) as worker, worker:
        seen_failing = receiver.failed_requests
        await eventually(failures, lambda count: count > seen_failing, seconds=60)
        receiver.failing = False
        await eventually(crm_ids, lambda ids: expected <= ids, seconds=90)

        async def desk_types() -> set[str]:
            return {item.type for item in receiver.accepted.get("desk", [])}

        await eventually(
            desk_types,
            lambda types: {"journey.started", "feedback.received", "detractor"} <= types,
            seconds=30,
        )

    assert receiver.refused_bad_signature == 0
    crm = receiver.accepted["crm"]
    desk = receiver.accepted["desk"]
    check_delivery(crm)
    check_delivery(desk)
    # No personal data unless asked: not in the data, nowhere in the body.
    for item in crm:
        assert "personal" not in item.data
        assert "@example.com" not in str(item.body)
        assert "crushed" not in str(item.body)
    # The filter holds, and personal data is there for the subscription that asked.
    assert {item.type for item in desk} <= {"journey.started", "feedback.received", "detractor"}
    started = next(item for item in desk if item.type == "journey.started")
    assert started.data["personal"]["email"].endswith("@example.com")
    assert started.data["customer_id"]
    assert started.data["order_id"] in orders
    detractor = next(item for item in desk if item.type == "detractor")
    assert detractor.data["score"] == 3
    assert detractor.data["personal"]["comment"] == "The box arrived crushed"
    # Each journey's start precedes its confirmation, for every journey.
    for order_id in orders:
        journey = journey_id_for(order_id)
        types = [item.type for item in first_arrivals(crm) if item.data["journey_id"] == journey]
        assert types.index("journey.started") < types.index("message.sent"), types
