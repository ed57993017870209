"""The push channel with both transports, against the FCM fake and the fake push
service and a real database: an app token goes through FCM and a browser's
subscription by web push, once each across retries; a subscription the push service
reports gone is forgotten and the customer's journeys told, as an unregistered token
is; a transport not configured skips its devices without forgetting them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.channels.base import ChannelUnavailableError, TransientDeliveryError
from activities.channels.email import LinkBuilder
from activities.channels.push import PushChannel
from activities.handover import Handover
from activities.push.fcm import FcmConfig, FcmSender
from activities.push.rendering import PushRenderer
from activities.push.webpush import WebPushConfig, WebPushSender
from engine.devstack.fcm_fake import FcmFake, serve_fcm_fake
from engine.devstack.webpush_fake import FakeSubscription, WebPushFake, serve_webpush_fake
from engine.messaging.push_devices import Platform, PushDevices
from engine.messaging.web_push_keys import WebPushKeys
from engine.platform.brand import brand_from_settings
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.platform.vapid import new_private_key_pem
from tests.support.databases import sqlite_url
from tests.support.orders import domain_order
from workflows.contracts import SendMessageInput
from workflows.vocabulary import Channel

PHONE = "ePhoneToken:APA91bH_webpush_channel_0001"


@dataclass
class Rig:
    fcm: FcmFake
    web: WebPushFake
    devices: PushDevices
    channel: PushChannel
    links: LinkBuilder
    renderer: PushRenderer
    forgotten: list[str] = field(default_factory=list)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    engine = create_engine(database)
    async with serve_fcm_fake("127.0.0.1", 0) as fcm, serve_webpush_fake("127.0.0.1", 0) as web:
        sender = FcmSender(
            FcmConfig(fcm.project_id, fcm.service_account().info, api_base_url=fcm.base_url)
        )
        webpush = WebPushSender(WebPushConfig(new_private_key_pem(), "mailto:ops@shop.example"))
        devices = PushDevices(create_session_factory(engine))
        brand = brand_from_settings(Settings(_env_file=None, shop_url="https://shop.example"))
        links = LinkBuilder(shop_url="https://shop.example")
        renderer = PushRenderer(brand)
        forgotten: list[str] = []

        async def heard(customer_id: str) -> None:
            forgotten.append(customer_id)

        channel = PushChannel(sender, renderer, links, devices, heard, web=webpush)
        try:
            yield Rig(fcm, web, devices, channel, links, renderer, forgotten)
        finally:
            await sender.aclose()
            await webpush.aclose()
            await engine.dispose()


def request_for(customer_id: str, category: str = "transactional") -> SendMessageInput:
    return SendMessageInput(
        journey_id=f"order-{uuid.uuid4().hex[:8]}",
        step="shipping_notice",
        template="shipping_notice",
        category=category,
        channel=Channel.PUSH,
        order=domain_order(customer_id=customer_id),
    )


async def register_browser(rig: Rig, customer_id: str, offset: int = 1) -> FakeSubscription:
    subscription = rig.web.subscribe()
    await rig.devices.register(
        customer_id,
        subscription.endpoint,
        Platform.WEB,
        datetime.now(UTC) + timedelta(seconds=offset),
        WebPushKeys(p256dh=subscription.p256dh, auth=subscription.auth),
    )
    return subscription


async def test_an_app_and_a_browser_each_get_it_once_across_a_retry(rig: Rig) -> None:
    await rig.devices.register("cus-both", PHONE, Platform.ANDROID, datetime.now(UTC))
    browser = await register_browser(rig, "cus-both")
    request = request_for("cus-both")
    rig.web.fail_next(503, retry_after=2, endpoint=browser.endpoint)
    with pytest.raises(TransientDeliveryError) as failure:
        await rig.channel.deliver(request, "cus-both", "ledger-web-1", Handover())
    assert failure.value.retry_after_seconds == 2
    assert [push.token for push in rig.fcm.messages] == [PHONE]
    assert rig.web.messages == []

    answer = await rig.channel.deliver(request, "cus-both", "ledger-web-1", Handover())
    assert answer.endswith("(+1 devices)")
    await rig.channel.deliver(request, "cus-both", "ledger-web-1", Handover())
    assert len(rig.fcm.messages) == 1
    [received] = rig.web.to(browser.endpoint)
    # The browser got what the app got: the same rendered title, body and link.
    fcm_message = rig.fcm.messages[0].message
    assert received.payload["title"] == fcm_message["notification"]["title"]
    assert received.payload["body"] == fcm_message["notification"]["body"]
    assert received.payload["url"] == fcm_message["data"]["link"]
    assert received.payload["url"].endswith(f"/orders/{request.order.order_id}")
    assert received.urgency == "high"


async def test_marketing_goes_at_normal_urgency(rig: Rig) -> None:
    browser = await register_browser(rig, "cus-marketing")
    request = request_for("cus-marketing", category="marketing")
    await rig.channel.deliver(request, "cus-marketing", "ledger-web-2", Handover())
    [received] = rig.web.to(browser.endpoint)
    assert received.urgency == "normal"


async def test_a_gone_subscription_is_forgotten_and_the_journeys_told(rig: Rig) -> None:
    browser = await register_browser(rig, "cus-revoked")
    rig.web.expire(browser.endpoint)
    request = request_for("cus-revoked")
    with pytest.raises(ChannelUnavailableError, match="410"):
        await rig.channel.deliver(request, "cus-revoked", "ledger-web-3", Handover())
    assert await rig.devices.of_customer("cus-revoked") == []
    assert rig.forgotten == ["cus-revoked"]
    with pytest.raises(ChannelUnavailableError, match="no push device registered"):
        await rig.channel.deliver(request, "cus-revoked", "ledger-web-4", Handover())


async def test_without_a_vapid_key_browsers_are_skipped_not_forgotten(rig: Rig) -> None:
    await register_browser(rig, "cus-unconfigured")
    fcm_sender = FcmSender(
        FcmConfig(rig.fcm.project_id, rig.fcm.service_account().info, api_base_url=rig.fcm.base_url)
    )
    channel = PushChannel(fcm_sender, rig.renderer, rig.links, rig.devices)
    try:
        with pytest.raises(ChannelUnavailableError, match="no VAPID key"):
            await channel.deliver(
                request_for("cus-unconfigured"), "cus-unconfigured", "ledger-web-5", Handover()
            )
    finally:
        await fcm_sender.aclose()
    assert len(await rig.devices.of_customer("cus-unconfigured")) == 1
    assert rig.web.messages == []
