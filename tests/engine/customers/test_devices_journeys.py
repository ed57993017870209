"""Push devices reach running journeys: the real dev server (with visibility), a real
worker pushing to the FCM fake, the real gRPC API, SQLite and PostgreSQL.

A journey starts knowing whether its customer has an app device; registering the
first one or removing the last through DevicesService tells it at once, as a
preference change would; a token FCM reports unregistered is forgotten by the worker,
which tells the customer's journeys too. Without a device, a push step costs no send
activity.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aftercare.v1 import devices_pb2 as pb
from pydantic import SecretStr
from temporalio.client import Client

from clients import DeviceNotFoundError
from engine.devstack.fcm_fake import FcmFake, serve_fcm_fake
from engine.devstack.mail_sink import MailSink
from tests.support.preferences import PreferencesStack, preferences_stack
from tests.support.push_journeys import (
    event,
    journey_when,
    knows_device,
    new_order,
    push_sends_scheduled,
    started_and_listed,
)
from workflows.orders import Order
from workflows.vocabulary import EventType


@dataclass
class Rig:
    stack: PreferencesStack
    fcm: FcmFake


@pytest.fixture
async def rig(
    temporal_client: Client, database_url: str, tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[Rig]:
    async with (
        serve_fcm_fake("127.0.0.1", 0, tmp_path / "push") as fcm,
        preferences_stack(
            temporal_client,
            database_url,
            tmp_path,
            mail_sink,
            fcm_project_id=fcm.project_id,
            fcm_service_account=SecretStr(fcm.service_account().to_json()),
            fcm_api_base_url=fcm.base_url,
        ) as stack,
    ):
        yield Rig(stack, fcm)


def new_token() -> str:
    return f"dev{uuid.uuid4().hex}:APA91bH_devices_journeys"


def pushed_steps(rig: Rig, order: Order) -> list[str]:
    return [
        push.message["data"]["step"]
        for push in rig.fcm.messages
        if push.message["data"].get("journey_id") == f"order-{order.order_id}"
    ]


async def test_registering_and_removing_a_device_reach_a_sleeping_journey(rig: Rig) -> None:
    order, token = new_order(), new_token()
    customer_id = order.customer.id
    await started_and_listed(rig.stack, order)
    await journey_when(rig.stack, order, knows_device(False))  # read at start

    await rig.stack.client.register_device(customer_id, token, pb.DEVICE_PLATFORM_ANDROID)
    await journey_when(rig.stack, order, knows_device(True))
    state = await event(rig.stack, order, EventType.SHIPPED, "shipping_notice")
    assert state.steps["shipping_notice"].detail == "by push"
    assert pushed_steps(rig, order) == ["shipping_notice"]

    await rig.stack.client.remove_device(customer_id, token=token)
    await journey_when(rig.stack, order, knows_device(False))
    state = await event(rig.stack, order, EventType.OUT_FOR_DELIVERY, "out_for_delivery")
    detail = state.steps["out_for_delivery"].detail
    assert detail.startswith("by email after push: no app device registered"), detail
    assert await push_sends_scheduled(rig.stack, order) == 1  # the shipping notice's alone
    assert pushed_steps(rig, order) == ["shipping_notice"]


async def test_a_device_moved_to_another_customer_tells_the_one_left_without(
    rig: Rig,
) -> None:
    before, token = new_order(), new_token()
    await rig.stack.client.register_device(before.customer.id, token, pb.DEVICE_PLATFORM_IOS)
    await started_and_listed(rig.stack, before)
    await journey_when(rig.stack, before, knows_device(True))

    await rig.stack.client.register_device("cus-new-owner", token, pb.DEVICE_PLATFORM_IOS)
    await journey_when(rig.stack, before, knows_device(False))


async def test_a_token_fcm_reports_unregistered_is_forgotten_and_the_journey_told(
    rig: Rig,
) -> None:
    order, token = new_order(), new_token()
    await rig.stack.client.register_device(order.customer.id, token, pb.DEVICE_PLATFORM_ANDROID)
    await started_and_listed(rig.stack, order)
    await journey_when(rig.stack, order, knows_device(True))
    rig.fcm.unregistered.add(token)  # the app was uninstalled

    state = await event(rig.stack, order, EventType.SHIPPED, "shipping_notice")
    assert state.steps["shipping_notice"].detail.startswith("by email after push: unavailable")
    assert not (await rig.stack.client.list_devices(order.customer.id)).devices
    await journey_when(rig.stack, order, knows_device(False))  # the worker told it

    state = await event(rig.stack, order, EventType.OUT_FOR_DELIVERY, "out_for_delivery")
    assert "push: no app device registered" in state.steps["out_for_delivery"].detail
    assert await push_sends_scheduled(rig.stack, order) == 1
    assert not pushed_steps(rig, order)


async def test_removing_a_device_of_an_erased_customer_writes_nothing_about_them(
    rig: Rig,
) -> None:
    customer_id, token = new_order().customer.id, new_token()
    client = rig.stack.client
    await client.register_device(customer_id, token, pb.DEVICE_PLATFORM_ANDROID)
    assert (await rig.stack.parts.store.get(customer_id)).revision > 0  # journeys were told
    assert (await client.erase_customer(customer_id)).finished

    with pytest.raises(DeviceNotFoundError):
        await client.remove_device(customer_id, token=token)
    # No preferences row (and so no revision) came back for them.
    assert (await rig.stack.parts.store.get(customer_id)).revision == 0
