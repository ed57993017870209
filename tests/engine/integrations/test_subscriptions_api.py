"""SubscriptionsService over real gRPC (real API, dev server, database): bad input
is refused naming the field and writes nothing; a subscription starts its
dispatcher, and removing it stops that and answers NOT_FOUND the second time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from clients import AftercareClient, InvalidRequestError
from clients.aftercare_client import SubscriptionNotFoundError
from engine.devstack.temporal_server import TemporalDevServer
from engine.messaging.event_subscriptions import EventSubscriptions
from engine.messaging.journey_events import record_journey_event_alone
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.api import serving_api
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.webhook_delivery import webhook_delivery_activities
from tests.engine.integrations.webhook_receiver import webhook_receiver
from tests.support.api_keys import all_scopes_key
from tests.support.databases import sqlite_url
from tests.support.net import free_port
from tests.support.waiting import eventually
from workflows.webhook_contracts import WebhookDispatchInput, dispatch_workflow_id
from workflows.webhook_dispatch import WebhookDispatch


@pytest.fixture
def settings(temporal_server: TemporalDevServer, tmp_path: Path) -> Settings:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            temporal_address=temporal_server.address,
            task_queue=f"subscriptions-{uuid.uuid4().hex[:8]}",
            database_url=database,
            grpc_port=free_port(),
        )
    )
    return settings


@pytest.fixture
async def client(settings: Settings, temporal_client: Client) -> AsyncIterator[AftercareClient]:
    api_key = await all_scopes_key(settings.resolved_database_url)
    async with (
        serving_api(temporal_client, settings, grace_seconds=1),
        AftercareClient(settings.grpc_target, api_key=api_key) as client,
        webhook_delivery_activities(settings) as deliveries,
        # The dispatchers alone: what the journey worker runs for them.
        Worker(
            temporal_client,
            task_queue=settings.task_queue,
            workflows=[WebhookDispatch],
            activities=[deliveries.deliver_journey_events],
        ),
    ):
        yield client


# Each bad URL and what the refusal says of it.
BAD_URLS = [
    ("", "is required"),
    ("http://crm.example.com/hooks", "must be https"),
    ("https://user:pw@crm.example.com/hooks", "must not hold credentials"),
    ("crm.example.com/hooks", "must be an absolute URL"),
    ("ftp://crm.example.com/hooks", "must be https"),
    ("https://crm.example.com:99999/hooks", "must be an absolute URL"),
]


async def test_a_url_that_cannot_receive_webhooks_is_refused_naming_the_field(
    client: AftercareClient,
) -> None:
    for url, problem in BAD_URLS:
        with pytest.raises(InvalidRequestError) as refused:
            await client.create_subscription(url)
        assert problem in refused.value.fields["url"], url
    assert (await client.list_subscriptions()).subscriptions == []


async def test_unknown_event_types_are_named_one_by_one(client: AftercareClient) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        await client.create_subscription(
            "https://crm.example.com/hooks", ["message.sent", "message.opened", "order.paid"]
        )
    assert set(refused.value.fields) == {"event_types[1]", "event_types[2]"}
    assert "message.opened" in refused.value.fields["event_types[1]"]
    assert (await client.list_subscriptions()).subscriptions == []


async def test_create_list_remove_and_the_dispatcher_follows(
    client: AftercareClient, temporal_client: Client
) -> None:
    created = await client.create_subscription(
        "http://127.0.0.1:9/hooks", ["detractor", "conversion", "detractor"]
    )
    subscription = created.subscription
    assert created.secret.startswith("whsec_")
    assert list(subscription.event_types) == ["conversion", "detractor"]
    assert not subscription.include_personal_data
    listed = (await client.list_subscriptions()).subscriptions
    assert [s.subscription_id for s in listed] == [subscription.subscription_id]
    handle = temporal_client.get_workflow_handle(dispatch_workflow_id(subscription.subscription_id))
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    await client.remove_subscription(subscription.subscription_id)

    assert (await client.list_subscriptions()).subscriptions == []

    async def status() -> WorkflowExecutionStatus | None:
        return (await handle.describe()).status

    await eventually(status, lambda s: s == WorkflowExecutionStatus.CANCELED)
    with pytest.raises(SubscriptionNotFoundError):
        await client.remove_subscription(subscription.subscription_id)
    with pytest.raises(InvalidRequestError) as refused:
        await client.remove_subscription("")
    assert "subscription_id" in refused.value.fields


async def test_the_dispatcher_continues_as_new_from_where_it_got(
    settings: Settings, client: AftercareClient, temporal_client: Client
) -> None:
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    store = EventSubscriptions(sessions)

    async def write(count: int) -> None:
        for _ in range(count):
            await record_journey_event_alone(
                sessions,
                event_id=f"conversion:{uuid.uuid4().hex}",
                journey_id="order-1",
                type="conversion",
                occurred_at=datetime.now(UTC),
                data={"order_id": "1"},
            )

    try:
        async with webhook_receiver() as receiver:
            subscription = await store.create(
                url=receiver.url_for("w"),
                event_types=[],
                include_personal_data=False,
                delivered_through=await store.latest_event_id(),
            )
            receiver.secrets["w"] = subscription.secret
            first = await temporal_client.start_workflow(
                WebhookDispatch.run,
                WebhookDispatchInput(subscription.id, await store.latest_event_id(), 2),
                id=dispatch_workflow_id(subscription.id),
                task_queue=settings.task_queue,
            )
            latest = temporal_client.get_workflow_handle(first.id)

            async def accepted() -> list[str]:
                return [item.webhook_id for item in receiver.accepted.get("w", [])]

            async def run_id() -> str:
                return (await latest.describe()).run_id

            await write(3)
            await eventually(accepted, lambda ids: len(ids) == 3, seconds=30)
            await eventually(run_id, lambda run: run != first.first_execution_run_id)
            await write(2)
            await latest.signal(WebhookDispatch.nudge)
            delivered = await eventually(accepted, lambda ids: len(ids) >= 5, seconds=30)
            assert len(set(delivered)) == len(delivered) == 5  # the cursor came along

            await store.remove(subscription.id)
            await latest.signal(WebhookDispatch.nudge)
            await latest.result()  # it ends by itself once it sees the removal
    finally:
        await engine.dispose()
