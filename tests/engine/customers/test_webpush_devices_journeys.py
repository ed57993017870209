"""Browsers' web push subscriptions end to end: registered through the real gRPC API,
a journey's push step sent by the real worker with a VAPID key to the fake push
service, which verifies the token and decrypts the message as the browser would; a
subscription the service reports gone (410) is removed and the journey told, so its
next push step costs no activity. Real Temporal dev server, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aftercare.v1 import devices_pb2 as pb
from pydantic import SecretStr
from temporalio.client import Client

from engine.devstack.mail_sink import MailSink
from engine.devstack.webpush_fake import FakeSubscription, WebPushFake, serve_webpush_fake
from engine.messaging.push_devices import device_id_of
from engine.platform.vapid import load_private_key, new_private_key_pem, public_key_of
from tests.support.preferences import PreferencesStack, preferences_stack
from tests.support.push_journeys import (
    event,
    journey_when,
    knows_device,
    new_order,
    push_sends_scheduled,
    started_and_listed,
)
from workflows.vocabulary import EventType


@dataclass
class Rig:
    stack: PreferencesStack
    web: WebPushFake
    vapid_public_key: str


@pytest.fixture
async def rig(
    temporal_client: Client, database_url: str, tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[Rig]:
    pem = new_private_key_pem()
    async with (
        serve_webpush_fake("127.0.0.1", 0, tmp_path / "webpush") as web,
        preferences_stack(
            temporal_client,
            database_url,
            tmp_path,
            mail_sink,
            webpush_vapid_private_key=SecretStr(pem),
            webpush_vapid_subject="mailto:ops@shop.example",
        ) as stack,
    ):
        yield Rig(stack, web, public_key_of(load_private_key(pem)))


async def subscribe(rig: Rig, customer_id: str) -> FakeSubscription:
    """A browser subscribes with the deployment's key; the shop registers it."""
    subscription = rig.web.subscribe(application_server_key=rig.vapid_public_key)
    reply = await rig.stack.client.register_device(
        customer_id,
        platform=pb.DEVICE_PLATFORM_WEB,
        web_push=pb.WebPushSubscription(
            endpoint=subscription.endpoint, p256dh=subscription.p256dh, auth=subscription.auth
        ),
    )
    assert reply.created
    assert reply.device.device_id == device_id_of(subscription.endpoint)
    return subscription


async def test_a_journeys_push_step_reaches_the_browser_decrypted(rig: Rig) -> None:
    order = new_order()
    subscription = await subscribe(rig, order.customer.id)
    [listed] = (await rig.stack.client.list_devices(order.customer.id)).devices
    assert listed.platform == pb.DEVICE_PLATFORM_WEB
    assert listed.push_service == rig.web.base_url  # the service, never the endpoint
    assert subscription.endpoint not in str(listed)

    await started_and_listed(rig.stack, order)
    await journey_when(rig.stack, order, knows_device(True))
    state = await event(rig.stack, order, EventType.SHIPPED, "shipping_notice")
    assert state.steps["shipping_notice"].detail == "by push"
    [received] = rig.web.to(subscription.endpoint)
    assert received.payload["title"] == "Your order is on its way"
    assert order.order_id in received.payload["body"]
    assert received.payload["url"] == "https://t.example/1"  # the shipment's tracking page
    assert received.payload["data"] == {
        "journey_id": f"order-{order.order_id}",
        "step": "shipping_notice",
    }
    assert received.urgency == "high"
    assert received.claims["sub"] == "mailto:ops@shop.example"
    assert received.path is not None
    assert received.path.exists()


async def test_a_subscription_gone_is_removed_and_the_journey_told(rig: Rig) -> None:
    order = new_order()
    subscription = await subscribe(rig, order.customer.id)
    await started_and_listed(rig.stack, order)
    await journey_when(rig.stack, order, knows_device(True))
    rig.web.expire(subscription.endpoint)  # the user revoked the permission

    state = await event(rig.stack, order, EventType.SHIPPED, "shipping_notice")
    assert state.steps["shipping_notice"].detail.startswith("by email after push: unavailable")
    assert (410, "the subscription has expired or was unsubscribed") in rig.web.refused
    assert not (await rig.stack.client.list_devices(order.customer.id)).devices
    await journey_when(rig.stack, order, knows_device(False))  # the worker told it

    state = await event(rig.stack, order, EventType.OUT_FOR_DELIVERY, "out_for_delivery")
    assert "push: no app device registered" in state.steps["out_for_delivery"].detail
    assert await push_sends_scheduled(rig.stack, order) == 1
    assert not rig.web.messages
