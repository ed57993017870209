"""Journey events published to RabbitMQ (AFTERCARE_EVENTS_BROKER_URL): a queue bound to
the exchange gets every event once, in outbox order, with its payload and id, nothing
lost while the broker is out of reach and the worker restarts; the credentials stay
out of the subscription and the API (real broker, dev server, worker, API, database)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import SecretStr, ValidationError
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.worker import Worker
from typer.testing import CliRunner

from clients import AftercareClient
from engine.cli.app import app
from engine.cli.samples import sample_order
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.integrations.subscriptions.broker import (
    BrokerConfigError,
    ensure_broker_publishing,
    published_event_types,
)
from engine.messaging.broker_subscription import BROKER_SUBSCRIPTION_ID
from engine.messaging.journey_events import record_journey_event_alone
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.database.tables import EventSubscription
from engine.platform.settings import Settings
from engine.processes.api import serving_api
from engine.processes.broker_publishing import broker_publish_activities
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.support.api_keys import all_scopes_key
from tests.support.databases import sqlite_url
from tests.support.net import free_port
from tests.support.waiting import eventually
from workflows.ids import journey_id_for
from workflows.webhook_contracts import (
    BROKER_TRANSPORT,
    WebhookDispatchInput,
    dispatch_workflow_id,
)
from workflows.webhook_dispatch import WebhookDispatch

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass
class Bound:
    """A queue bound to the test's exchange, and what it has received so far."""

    queue: AbstractQueue
    received: list[AbstractIncomingMessage]

    async def drain(self) -> list[AbstractIncomingMessage]:
        while (message := await self.queue.get(fail=False, no_ack=True)) is not None:
            self.received.append(message)
        return self.received

    async def event_ids(self) -> list[str]:
        return [str(message.message_id) for message in await self.drain()]


def base_settings(temporal_server: TemporalDevServer, tmp_path: Path, **extra: Any) -> Settings:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    return with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            temporal_address=temporal_server.address,
            task_queue=f"broker-{uuid.uuid4().hex[:8]}",
            database_url=database,
            grpc_port=free_port(),
            events_broker_url=BROKER_URL,
            events_exchange=f"test.journey-events.{uuid.uuid4().hex[:8]}",
            **extra,
        )
    )


@contextlib.asynccontextmanager
async def bound_queue(exchange: str, temporal_client: Client) -> AsyncIterator[Bound]:
    """The shop's side: a queue bound to every routing key of the exchange (declared
    first as we declare it, so nothing published is missed). Afterwards the exchange
    goes, and the broker's dispatcher (its id is fixed) with it."""
    connection = await aio_pika.connect_robust(BROKER_URL)
    try:
        channel = await connection.channel()
        declared = await channel.declare_exchange(
            exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(declared, routing_key="#")
        try:
            yield Bound(queue, [])
        finally:
            handle = temporal_client.get_workflow_handle(
                dispatch_workflow_id(BROKER_SUBSCRIPTION_ID)
            )
            with contextlib.suppress(RPCError):
                await handle.terminate("test over")
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


def body_of(message: AbstractIncomingMessage) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(message.body)
    return parsed


async def subscription_rows(settings: Settings) -> list[EventSubscription]:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list(await session.scalars(select(EventSubscription)))
    finally:
        await engine.dispose()


async def publish_attempts(temporal_client: Client) -> int:
    """The attempt the broker dispatcher's publishing is at (0: none pending)."""
    handle = temporal_client.get_workflow_handle(dispatch_workflow_id(BROKER_SUBSCRIPTION_ID))
    pending = (await handle.describe()).raw_description.pending_activities
    return max((activity.attempt for activity in pending), default=0)


async def test_every_event_reaches_the_exchange_once_in_order_across_a_broker_outage_and_restart(
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mail_sink: MailSink,
    tmp_path: Path,
) -> None:
    settings = base_settings(temporal_server, tmp_path, smtp_port=mail_sink.port)
    # Nothing listens there: the broker is out of reach for this worker.
    unreachable = settings.model_copy(
        update={"events_broker_url": SecretStr(f"amqp://guest:guest@127.0.0.1:{free_port()}/")}
    )
    api_key = await all_scopes_key(settings.resolved_database_url)
    orders = [f"BR-{uuid.uuid4().hex[:10]}" for _ in range(4)]
    expected: list[str] = []
    async with (
        bound_queue(settings.events_exchange, temporal_client) as bound,
        serving_api(temporal_client, settings, grace_seconds=1),
        AftercareClient(settings.grpc_target, api_key=api_key) as client,
    ):
        # As every worker does at start: twice is the same as once.
        await ensure_broker_publishing(temporal_client, settings)
        await ensure_broker_publishing(temporal_client, settings)
        listed = (await client.list_subscriptions()).subscriptions
        assert [s.subscription_id for s in listed] == [BROKER_SUBSCRIPTION_ID]
        assert listed[0].url == f"amqp://127.0.0.1:5672/ exchange {settings.events_exchange}"

        def confirmation(order_id: str) -> list[str]:
            journey = journey_id_for(order_id)
            return [
                f"journey.started:{journey}",
                f"message.sent:{journey}/order_confirmation/0/email",
            ]

        async with journey_worker(temporal_client, settings) as worker, worker:
            for variant, order_id in enumerate(orders[:2]):
                await client.start_journey(sample_order(order_id, variant))
                expected += confirmation(order_id)
            await eventually(bound.event_ids, lambda ids: set(expected) <= set(ids), seconds=30)

        # The broker out of reach: publishing fails and is retried; journeys go on.
        async with journey_worker(temporal_client, unreachable) as worker, worker:
            for variant, order_id in enumerate(orders[2:], start=2):
                await client.start_journey(sample_order(order_id, variant))
                expected += confirmation(order_id)

            async def retried() -> int:
                return await publish_attempts(temporal_client)

            await eventually(retried, lambda attempt: attempt >= 2, seconds=30)
            assert len(await bound.event_ids()) == 4

        # A new worker, the broker back: what waited arrives, after what came before.
        await ensure_broker_publishing(temporal_client, settings)
        async with journey_worker(temporal_client, settings) as worker, worker:
            await eventually(bound.event_ids, lambda ids: set(expected) <= set(ids), seconds=30)

            # The setting gone: the subscription is removed and its dispatcher ends.
            await ensure_broker_publishing(
                temporal_client, settings.model_copy(update={"events_broker_url": None})
            )
            assert (await client.list_subscriptions()).subscriptions == []
            handle = temporal_client.get_workflow_handle(
                dispatch_workflow_id(BROKER_SUBSCRIPTION_ID)
            )

            async def status() -> WorkflowExecutionStatus | None:
                return (await handle.describe()).status

            await eventually(status, lambda now: now != WorkflowExecutionStatus.RUNNING)
        rows = await subscription_rows(settings)

    received = bound.received
    ids = [str(message.message_id) for message in received]
    assert len(ids) == len(set(ids)), "an event arrived twice"
    assert set(ids) == set(expected)
    sequences = [body_of(message)["data"]["sequence"] for message in received]
    assert sequences == sorted(sequences), "events arrived out of outbox order"
    for message in received:
        body = body_of(message)
        assert message.routing_key == body["type"]
        assert message.message_id == body["data"]["event_id"]
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.timestamp is not None
        occurred = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
        assert message.timestamp.replace(tzinfo=UTC) == occurred.replace(microsecond=0)
        assert body["data"]["journey_id"] in {journey_id_for(order) for order in orders}
        # No personal data unless asked.
        assert "personal" not in body["data"]
        assert "@example.com" not in message.body.decode()
    started = [body_of(m)["data"] for m in received if m.routing_key == "journey.started"]
    assert sorted(data["order_id"] for data in started) == sorted(orders)
    # The credentials are in the settings only: not in the row, not in the API.
    assert [row.id for row in rows] == [BROKER_SUBSCRIPTION_ID]
    for row in rows:
        stored = " ".join(
            str(getattr(row, column.key)) for column in EventSubscription.__mapper__.columns
        )
        assert "guest" not in stored
    assert "guest" not in str(listed)


async def test_the_filter_and_personal_data_follow_the_settings(
    temporal_server: TemporalDevServer, temporal_client: Client, tmp_path: Path
) -> None:
    settings = base_settings(
        temporal_server,
        tmp_path,
        events_types="detractor, journey.started",
        events_personal_data=True,
    )
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    now = datetime.now(UTC)
    events: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
        ("journey.started", {"order_id": "F-1"}, {"email": "ada@example.com"}),
        ("message.sent", {"step": "order_confirmation"}, None),
        ("detractor", {"score": 2}, {"comment": "Late again"}),
    ]
    try:
        async with (
            bound_queue(settings.events_exchange, temporal_client) as bound,
            broker_publish_activities(settings) as publisher,
            # The dispatchers alone: what the journey worker runs for them.
            Worker(
                temporal_client,
                task_queue=settings.task_queue,
                workflows=[WebhookDispatch],
                activities=[publisher.publish_journey_events],
            ),
        ):
            await ensure_broker_publishing(temporal_client, settings)
            for index, (event_type, data, personal) in enumerate(events):
                await record_journey_event_alone(
                    sessions,
                    event_id=f"{event_type}:journey-F-1:{index}",
                    journey_id="journey-F-1",
                    type=event_type,
                    occurred_at=now,
                    data=data,
                    personal=personal,
                )
            await temporal_client.get_workflow_handle(
                dispatch_workflow_id(BROKER_SUBSCRIPTION_ID)
            ).signal(WebhookDispatch.nudge)
            await eventually(bound.event_ids, lambda ids: len(ids) >= 2, seconds=20)
    finally:
        await engine.dispose()

    bodies = [body_of(message) for message in bound.received]
    assert [body["type"] for body in bodies] == ["journey.started", "detractor"]
    assert bodies[0]["data"]["personal"] == {"email": "ada@example.com"}
    assert bodies[0]["data"]["order_id"] == "F-1"
    assert bodies[1]["data"]["personal"] == {"comment": "Late again"}
    assert bodies[1]["data"]["score"] == 2


async def test_the_broker_dispatcher_stays_a_broker_one_when_it_continues_as_new(
    temporal_server: TemporalDevServer, temporal_client: Client, tmp_path: Path
) -> None:
    settings = base_settings(temporal_server, tmp_path)
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    try:
        async with (
            bound_queue(settings.events_exchange, temporal_client) as bound,
            broker_publish_activities(settings) as publisher,
            # Only the publishing activity: a dispatcher that lost its transport would
            # ask for the webhook one, which nothing here serves.
            Worker(
                temporal_client,
                task_queue=settings.task_queue,
                workflows=[WebhookDispatch],
                activities=[publisher.publish_journey_events],
            ),
        ):
            await ensure_broker_publishing(temporal_client, settings)
            handle = temporal_client.get_workflow_handle(
                dispatch_workflow_id(BROKER_SUBSCRIPTION_ID)
            )
            first_run = (await handle.describe()).run_id
            await handle.terminate("replaced by one that continues as new after a batch")
            await temporal_client.start_workflow(
                WebhookDispatch.run,
                WebhookDispatchInput(
                    BROKER_SUBSCRIPTION_ID, 0, batches_per_run=1, transport=BROKER_TRANSPORT
                ),
                id=dispatch_workflow_id(BROKER_SUBSCRIPTION_ID),
                task_queue=settings.task_queue,
            )

            async def run_ids() -> set[str]:
                return {
                    execution.run_id
                    async for execution in temporal_client.list_workflows(
                        f"WorkflowId = '{dispatch_workflow_id(BROKER_SUBSCRIPTION_ID)}'"
                    )
                }

            # The original, the replacement, and at least one run it continued as.
            await eventually(run_ids, lambda runs: len(runs - {first_run}) >= 2, seconds=20)
            await record_journey_event_alone(
                sessions,
                event_id="conversion:order-C-1",
                journey_id="order-C-1",
                type="conversion",
                occurred_at=datetime.now(UTC),
                data={"order_id": "C-1"},
            )
            await handle.signal(WebhookDispatch.nudge)
            await eventually(bound.event_ids, lambda ids: ids == ["conversion:order-C-1"])
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "http://guest:s3cr3t-pw@127.0.0.1:5672/",
        "amqp://guest:s3cr3t-pw@127.0.0.1:99999/",
        "guest:s3cr3t-pw@127.0.0.1",
    ],
)
def test_a_malformed_broker_url_stops_the_worker_naming_the_setting(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, events_broker_url=url)
    assert "AFTERCARE_EVENTS_BROKER_URL must be an AMQP URL" in str(refused.value)
    assert "s3cr3t" not in str(refused.value)
    # What `aftercare worker` says, before it connects to anything.
    monkeypatch.setenv("AFTERCARE_EVENTS_BROKER_URL", url)
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "AFTERCARE_EVENTS_BROKER_URL must be an AMQP URL" in result.output
    assert "s3cr3t" not in result.output


def test_an_unknown_event_type_is_refused_naming_the_setting() -> None:
    settings = Settings(_env_file=None, events_types="message.sent,message.opened")
    with pytest.raises(BrokerConfigError, match="AFTERCARE_EVENTS_TYPES: unknown event type"):
        published_event_types(settings)
    assert published_event_types(Settings(_env_file=None, events_types=" detractor ,")) == (
        "detractor",
    )
