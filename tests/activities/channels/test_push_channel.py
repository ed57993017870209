"""The push channel against the FCM fake and a real database: one notification per
device, a retry after a partial failure reaches only the devices still missing it,
and no device left means the next channel, not a suppressed address."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.channels.base import ChannelUnavailableError, TransientDeliveryError
from activities.channels.email import LinkBuilder
from activities.channels.push import PushChannel
from activities.handover import Handover
from activities.push.fcm import FcmConfig, FcmSender
from activities.push.rendering import PushRenderer
from engine.devstack.fcm_fake import FcmFake, serve_fcm_fake
from engine.messaging.push_devices import Platform, PushDevices
from engine.platform.brand import brand_from_settings
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from tests.support.databases import sqlite_url
from tests.support.orders import domain_order
from workflows.contracts import SendMessageInput
from workflows.vocabulary import Channel

PHONE = "ePhoneToken:APA91bH_channel_test_0001"
TABLET = "eTabletToken:APA91bH_channel_test_0002"


@dataclass
class Rig:
    fcm: FcmFake
    devices: PushDevices
    channel: PushChannel


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    engine = create_engine(database)
    async with serve_fcm_fake("127.0.0.1", 0) as fcm:
        sender = FcmSender(
            FcmConfig(fcm.project_id, fcm.service_account().info, api_base_url=fcm.base_url)
        )
        devices = PushDevices(create_session_factory(engine))
        brand = brand_from_settings(Settings(_env_file=None, shop_url="https://shop.example"))
        channel = PushChannel(
            sender, PushRenderer(brand), LinkBuilder(shop_url="https://shop.example"), devices
        )
        try:
            yield Rig(fcm, devices, channel)
        finally:
            await sender.aclose()
            await engine.dispose()


def request_for(customer_id: str) -> SendMessageInput:
    return SendMessageInput(
        journey_id=f"order-{uuid.uuid4().hex[:8]}",
        step="shipping_notice",
        template="shipping_notice",
        category="transactional",
        channel=Channel.PUSH,
        order=domain_order(customer_id=customer_id),
    )


async def register(rig: Rig, customer_id: str, *tokens: str) -> None:
    start = datetime.now(UTC)
    for offset, token in enumerate(tokens):
        when = start + timedelta(seconds=offset)  # registration order decides send order
        await rig.devices.register(customer_id, token, Platform.ANDROID, when)


async def test_a_retry_after_a_partial_failure_reaches_only_the_devices_missing_it(
    rig: Rig,
) -> None:
    await register(rig, "cus-partial", PHONE, TABLET)
    request = request_for("cus-partial")
    rig.fcm.fail_next(503, retry_after=3, token=TABLET)
    with pytest.raises(TransientDeliveryError) as failure:
        await rig.channel.deliver(request, "cus-partial", "ledger-key-1", Handover())
    assert failure.value.retry_after_seconds == 3
    assert [push.token for push in rig.fcm.messages] == [PHONE]

    answer = await rig.channel.deliver(request, "cus-partial", "ledger-key-1", Handover())
    assert [push.token for push in rig.fcm.messages] == [PHONE, TABLET]
    assert answer.endswith("(+1 devices)")
    # A third attempt (the record of the second was lost) sends nothing more.
    await rig.channel.deliver(request, "cus-partial", "ledger-key-1", Handover())
    assert len(rig.fcm.messages) == 2


async def test_no_device_left_is_the_next_channel_not_a_bounce(rig: Rig) -> None:
    await register(rig, "cus-gone", PHONE)
    rig.fcm.unregistered.add(PHONE)
    request = request_for("cus-gone")
    with pytest.raises(ChannelUnavailableError, match="UNREGISTERED"):
        await rig.channel.deliver(request, "cus-gone", "ledger-key-2", Handover())
    assert await rig.devices.of_customer("cus-gone") == []
    with pytest.raises(ChannelUnavailableError, match="no push device registered"):
        await rig.channel.deliver(request, "cus-gone", "ledger-key-3", Handover())


async def test_the_notification_is_rendered_per_locale_and_template(rig: Rig) -> None:
    await register(rig, "cus-render", PHONE)
    request = request_for("cus-render")
    await rig.channel.deliver(request, "cus-render", "ledger-key-4", Handover())
    [push] = rig.fcm.messages
    assert push.message["notification"]["title"] == "Your order is on its way"
    assert request.order.order_id in push.message["notification"]["body"]
    assert push.message["data"] == {
        "journey_id": request.journey_id,
        "step": "shipping_notice",
        "link": f"https://shop.example/orders/{request.order.order_id}",
    }
    unknown = SendMessageInput(**{**request.__dict__, "template": "cross_sell"})
    assert rig.channel.unavailable_reason(unknown) == "no push text for cross_sell"
